-- Aggregates' indexes, whichever form they are in (compact_index.lua, prepended).
-- KEYS[1] the shard's log stream (routing); ARGV[1] the shard's key prefix, ARGV[2..] stored
-- originator ids. Returns, per aggregate, its flat index: position, version, ... (ascending).
local out = {}
for i = 2, #ARGV do
  out[#out + 1] = index_range(ARGV[1], ARGV[i], "-inf", "+inf", false, 0)
end
return out
