-- Read one aggregate's events from the shard log through its version index (its sorted set,
-- or its compact entry once wholly archived: compact_index.lua, prepended).
-- KEYS[1] the shard's log stream; KEYS[2] the aggregate's index (zset: score = version,
-- member = notification id).
-- ARGV: min score, max score (ZRANGEBYSCORE syntax), "asc" | "desc", limit (0 = none),
-- the shard's key prefix, the stored originator id
-- Returns a flat array: version, topic, state, version, topic, state, ...; an entry not in
-- the log (archived) comes as version, false, notification id
local log = KEYS[1]
local lo, hi, order, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local nids = index_range(ARGV[5], ARGV[6], lo, hi, order == "desc", limit)
local out = {}
for i = 1, #nids, 2 do
  local entry = redis.call("XRANGE", log, nids[i] .. "-0", nids[i] .. "-0")
  local topic, state
  if #entry == 0 then
    -- archived (or missing): the caller reads this position from the archive tier
    topic, state = false, nids[i]
  else
    local f = entry[1][2]
    for j = 1, #f, 2 do
      if f[j] == "t" then topic = f[j + 1] elseif f[j] == "s" then state = f[j + 1] end
    end
  end
  out[#out + 1] = nids[i + 1]
  out[#out + 1] = topic
  out[#out + 1] = state
end
return out
