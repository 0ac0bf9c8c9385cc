-- Record a tracking position; positions only move forward.
-- KEYS[1] the shard's tracking hash; ARGV[1] application name; ARGV[2] notification id
local cur = redis.call("HGET", KEYS[1], ARGV[1])
if cur and tonumber(cur) >= tonumber(ARGV[2]) then
  return redis.error_reply("INTEGRITY tracking " .. ARGV[1] .. " already at " .. cur)
end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
return 1
