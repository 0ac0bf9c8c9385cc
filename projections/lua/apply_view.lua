-- Apply a batch of view updates and move the view's tracking position, atomically.
-- The tracking position written here is the truth about what the view contains; the
-- consumer group only delivers.
-- KEYS[1] the shard's tracking hash; KEYS[2] (with ARGV[9]) the shard's view generations hash
-- ARGV[1] the view's tracking field (name, or name@generation); ARGV[2] expected current position ("0" = none); ARGV[3] new position
-- Every write list is grouped by key (one table per key, not one per write: building Lua
-- tables and strings is most of a script's cost), each field / member at most once:
-- ARGV[4] msgpack array of {key, field, increment, field, increment, ...}: HINCRBY; a field
--         that reaches 0 is removed, so a rebuilt view holds exactly the fields of the one it replaces
-- ARGV[5] (optional) msgpack array of {key, field, value, field, value, ...}: one HSET per key
--         (state a view keeps to attribute later events, and values it cannot add in Lua)
-- ARGV[6] (optional; ARGV[5] then given) msgpack array of {key, field, field, ...}: HDEL
-- ARGV[7] (optional; ARGV[5..6] then given) msgpack array of {key, score, member, score, member, ...}:
--         ZADD (indexes a view pages or ranges over)
-- ARGV[8] (optional; ARGV[5..7] then given) msgpack array of {key, member, member, ...}: ZREM
-- ARGV[9], ARGV[10] (optional; ARGV[5..8] then given) view name and the generation the
--         batch was computed for ("" = the first): a live view writes only to its current
--         generation, so after a replay's switch-over its old keys stay untouched (and removable)
-- Returns 1 when applied, 0 when the position was not the expected one, -1 when the generation
-- is no longer current (nothing written in either case).
if ARGV[9] and (redis.call("HGET", KEYS[2], ARGV[9]) or "") ~= ARGV[10] then return -1 end
local cur = redis.call("HGET", KEYS[1], ARGV[1]) or "0"
if cur ~= ARGV[2] then return 0 end

-- one command per key, its arguments in chunks (unpack is bounded by Lua's C stack)
local function grouped(command, arg)
  if not arg then return end
  for _, op in ipairs(cmsgpack.unpack(arg)) do
    local n = #op
    for i = 2, n, 1000 do
      redis.call(command, op[1], unpack(op, i, math.min(n, i + 999)))
    end
  end
end

for _, op in ipairs(cmsgpack.unpack(ARGV[4])) do
  local key = op[1]
  for i = 2, #op, 2 do
    if redis.call("HINCRBY", key, op[i], op[i + 1]) == 0 then
      redis.call("HDEL", key, op[i])
    end
  end
end
grouped("HSET", ARGV[5])
grouped("HDEL", ARGV[6])
grouped("ZADD", ARGV[7])
grouped("ZREM", ARGV[8])
redis.call("HSET", KEYS[1], ARGV[1], ARGV[3])
return 1
