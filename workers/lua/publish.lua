-- Publish one entry to a stream and move the publisher's tracking position to the log
-- entry that caused it, in one step: each log entry is published once, whatever crashes.
-- KEYS[1] tracking hash; KEYS[2] the stream to publish to
-- ARGV[1] publisher name; ARGV[2] the log entry's notification id; ARGV[3..] field, value, ...
-- Returns 1, or 0 when the position is already there or past it (a twin published it).
local current = tonumber(redis.call("HGET", KEYS[1], ARGV[1]) or "0")
if current >= tonumber(ARGV[2]) then
  return 0
end
local fields = {}
for i = 3, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call("XADD", KEYS[2], "*", unpack(fields))
redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
return 1
