-- Claim due timers of a shard's scheduler, atomically, with a lease.
-- KEYS[1] timers (zset: score = due ms), KEYS[2] leased (zset: score = lease expiry ms)
-- ARGV[1] now ms, ARGV[2] lease ms, ARGV[3] max count
-- A timer whose lease ran out (its worker died) is due again. Returns the claimed timers.
local now, lease, count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local expired = redis.call("ZRANGEBYSCORE", KEYS[2], "-inf", now, "LIMIT", 0, count)
for _, t in ipairs(expired) do
  redis.call("ZREM", KEYS[2], t)
  redis.call("ZADD", KEYS[1], now, t)
end
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now, "LIMIT", 0, count)
for _, t in ipairs(due) do
  redis.call("ZREM", KEYS[1], t)
  redis.call("ZADD", KEYS[2], now + lease, t)
end
return due
