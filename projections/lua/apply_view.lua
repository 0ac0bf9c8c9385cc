-- Apply a batch of view updates and move the view's tracking position, atomically.
-- The tracking position written here is the truth about what the view contains; the
-- consumer group only delivers.
-- KEYS[1] the shard's tracking hash; KEYS[2] (with ARGV[7]) the shard's view generations hash
-- ARGV[1] the view's tracking field (name, or name@generation); ARGV[2] expected current position ("0" = none); ARGV[3] new position
-- ARGV[4] msgpack array of {key, field, increment}: a field that reaches 0 is removed, so a
--         rebuilt view holds exactly the fields of the one it replaces
-- ARGV[5] (optional) msgpack array of {key, field, value}: HSET, or HDEL when value is nil
--         (state a view keeps to attribute later events, and values it cannot add in Lua)
-- ARGV[6] (optional; ARGV[5] then given, maybe empty) msgpack array of {key, member, score}:
--         ZADD, or ZREM when score is nil (indexes a view pages or ranges over)
-- ARGV[7], ARGV[8] (optional; ARGV[5], ARGV[6] then given) view name and the generation the
--         batch was computed for ("" = the first): a live view writes only to its current
--         generation, so after a replay's switch-over its old keys stay untouched (and removable)
-- Returns 1 when applied, 0 when the position was not the expected one, -1 when the generation
-- is no longer current (nothing written in either case).
if ARGV[7] and (redis.call("HGET", KEYS[2], ARGV[7]) or "") ~= ARGV[8] then return -1 end
local cur = redis.call("HGET", KEYS[1], ARGV[1]) or "0"
if cur ~= ARGV[2] then return 0 end
for _, op in ipairs(cmsgpack.unpack(ARGV[4])) do
  if redis.call("HINCRBY", op[1], op[2], op[3]) == 0 then
    redis.call("HDEL", op[1], op[2])
  end
end
if ARGV[5] then
  for _, op in ipairs(cmsgpack.unpack(ARGV[5])) do
    if op[3] == nil then
      redis.call("HDEL", op[1], op[2])
    else
      redis.call("HSET", op[1], op[2], op[3])
    end
  end
end
if ARGV[6] then
  for _, op in ipairs(cmsgpack.unpack(ARGV[6])) do
    if op[3] == nil then
      redis.call("ZREM", op[1], op[2])
    else
      redis.call("ZADD", op[1], op[3], op[2])
    end
  end
end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[3])
return 1
