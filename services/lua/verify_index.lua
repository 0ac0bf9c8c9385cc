-- Read a shard's aggregate indexes in bulk for ``outcomes verify`` (services/verify.py):
-- one call per batch of log entries instead of one command each.
--
-- KEYS[1]  the shard's log stream (routes the call to the shard's cluster slot)
-- ARGV[1]  the shard's key prefix, e.g. "ol:{s00}:"
-- ARGV[2]  "score": ARGV[3..] are pairs {originator id, notification id}; returns each
--          pair's version as the aggregate's index has it, or false when it is not there
--          "card":  ARGV[3..] are originator ids; returns the size of each one's index
local p, mode, out = ARGV[1], ARGV[2], {}
if mode == "score" then
  for i = 3, #ARGV, 2 do
    out[#out + 1] = redis.call("ZSCORE", p .. "a:" .. ARGV[i], ARGV[i + 1])
  end
else
  for i = 3, #ARGV do
    out[#out + 1] = redis.call("ZCARD", p .. "a:" .. ARGV[i])
  end
end
return out
