-- Replace wholly archived aggregates' sorted sets by compact entries (events/compact.py;
-- the entries' form: compact_index.lua). An aggregate is compacted only if its index is
-- still what the caller read (its top position and size): one that got a new event
-- meanwhile keeps its set.
--
-- KEYS[1]  the shard's log stream (routes the call to the shard's cluster slot)
-- ARGV[1]  the shard's key prefix; ARGV[2] entries per bucket before the next depth's
--          buckets (16 times as many) take the new entries
-- ARGV[3..] quadruples {originator id, top position, number of versions, entry}
-- Returns how many aggregates were compacted.
local p, fill = ARGV[1], tonumber(ARGV[2])
local marks = redis.call("HMGET", p .. "archived", "depth", "filled")
local depth, filled = tonumber(marks[1] or "1"), tonumber(marks[2] or "0")
local done = 0
for i = 3, #ARGV, 4 do
  local oid = ARGV[i]
  local index = p .. "a:" .. oid
  local top = redis.call("ZRANGE", index, -1, -1)
  if #top == 1 and top[1] == ARGV[i + 1] and redis.call("ZCARD", index) == tonumber(ARGV[i + 2]) then
    if filled >= fill * 16 ^ depth then depth, filled = depth + 1, 0 end
    redis.call("HSET", p .. "ah:" .. string.sub(redis.sha1hex(oid), 1, depth), oid, ARGV[i + 3])
    redis.call("DEL", index)
    redis.call("HDEL", p .. "archived-heads", oid)
    filled = filled + 1
    done = done + 1
  end
end
redis.call("HSET", p .. "archived", "depth", depth, "filled", filled)
return done
