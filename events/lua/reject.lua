-- Record a rejected ingest entry and acknowledge it, atomically (a crash cannot leave a
-- rejection without its ack, nor an ack without its rejection).
-- KEYS[1] the tenant's ingest stream, KEYS[2] its rejections stream
-- ARGV[1] consumer group, ARGV[2] the ingest entry id, ARGV[3..] field/value pairs
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call("XADD", KEYS[2], "*", unpack(fields))
return redis.call("XACK", KEYS[1], ARGV[1], ARGV[2])
