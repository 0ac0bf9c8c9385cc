-- Read a shard's aggregate indexes in bulk for ``outcomes verify`` (services/verify.py):
-- one call per batch of log entries instead of one command each.
--
-- KEYS[1]  the shard's log stream (routes the call to the shard's cluster slot)
-- ARGV[1]  the shard's key prefix, e.g. "ol:{s00}:"
-- ARGV[2]  "score": ARGV[3..] are pairs {originator id, notification id}; returns each
--          pair's version as the aggregate's index has it, or false when it is not there
--          "card":  ARGV[3..] are originator ids; returns the size of each one's index
-- An aggregate without its sorted set is looked up in the compact entries
-- (events/lua/compact_index.lua, prepended).
local p, mode, out = ARGV[1], ARGV[2], {}
if mode == "score" then
  for i = 3, #ARGV, 2 do
    local score = redis.call("ZSCORE", p .. "a:" .. ARGV[i], ARGV[i + 1])
    if not score then
      local compact = compact_index(p, ARGV[i])
      for k, position in ipairs(compact and compact.positions or {}) do
        if string.format("%.0f", position) == ARGV[i + 1] then score = string.format("%.0f", compact.first + k - 1) end
      end
    end
    out[#out + 1] = score
  end
else
  for i = 3, #ARGV do
    local size = redis.call("ZCARD", p .. "a:" .. ARGV[i])
    if size == 0 then
      local compact = compact_index(p, ARGV[i])
      size = compact and #compact.positions or 0
    end
    out[#out + 1] = size
  end
end
return out
