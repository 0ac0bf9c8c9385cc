-- Append events to per-aggregate streams (the plain aggregate recorder, e.g. snapshots).
-- Stream entry ids are "<version>-1" (0-0 is not a legal id, and versions may be 0).
-- KEYS[1] any key of the shard (routing); ARGV[1] key prefix for aggregate streams;
-- ARGV[2] msgpack array of {originator_id, version, topic, state}
local p = ARGV[1]
local events = cmsgpack.unpack(ARGV[2])
local fmt = function(n) return string.format("%.0f", n) end
local newest = {}
for _, e in ipairs(events) do
  local key = p .. e[1]
  local last = newest[key]
  if last == nil then
    local top = redis.call("XREVRANGE", key, "+", "-", "COUNT", 1)
    last = -1
    if #top > 0 then last = tonumber(string.match(top[1][1], "^(%d+)-")) end
  end
  if e[2] <= last then
    return redis.error_reply("INTEGRITY " .. e[1] .. " version " .. fmt(e[2]) .. " not after " .. fmt(last))
  end
  newest[key] = e[2]
end
for _, e in ipairs(events) do
  redis.call("XADD", p .. e[1], fmt(e[2]) .. "-1", "t", e[3], "s", e[4])
end
return #events
