-- Give up on a log entry: record it in the dead-letter stream and move the worker's
-- tracking position past it, in one step (so it is neither lost nor retried forever).
-- KEYS[1] tracking hash; KEYS[2] dead-letter stream; KEYS[3] attempts hash
-- ARGV: worker name, expected position ("0" = none), the entry's notification id,
--       event type, reason, attempts, the entry's tenant ("" when none)
-- Returns the dead-letter entry id, or false when the position moved meanwhile (a twin).
local current = redis.call("HGET", KEYS[1], ARGV[1]) or "0"
if current ~= ARGV[2] then
  return false
end
local id = redis.call("XADD", KEYS[2], "*", "worker", ARGV[1], "nid", ARGV[3], "type", ARGV[4],
  "reason", ARGV[5], "attempts", ARGV[6], "tenant", ARGV[7])
redis.call("HSET", KEYS[1], ARGV[1], ARGV[3])
redis.call("HDEL", KEYS[3], ARGV[1] .. ":" .. ARGV[3])
return id
