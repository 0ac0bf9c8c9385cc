-- Adopt a number of partitions for one action follower (workers/partitions.py), in one step.
-- KEYS[1] the shard's tracking hash; KEYS[2] the action-partitions hash
-- ARGV[1] the follower's name; ARGV[2] the number of partitions wanted; ARGV[3] the sealed position
-- Returns {1} when the follower's positions are kept in that many partitions (now or
-- already), or {0, position, ...}: the positions of the layout in force, which differ --
-- a part of the log is done by some partitions and not others, so a new split could not
-- tell which entries are done. Changing the number needs a drained log (equal positions).
local base, wanted = ARGV[1], tonumber(ARGV[2])
local recorded = tonumber(redis.call("HGET", KEYS[2], base) or "1")
if recorded == wanted then
  return {1}
end
local function unit(p, n)
  if n == 1 then
    return base
  end
  return base .. "#" .. p
end
local positions, common, same = {}, nil, true
for p = 0, recorded - 1 do
  local at = tonumber(redis.call("HGET", KEYS[1], unit(p, recorded)) or "0")
  positions[#positions + 1] = at
  if common == nil then
    common = at
  elseif at ~= common then
    same = false
  end
end
if not same then
  return {0, unpack(positions)}
end
-- the old layout's positions sealed far ahead (a process still running it writes nothing
-- more), then the new units' set: a name in both layouts starts at the common position
for p = 0, recorded - 1 do
  redis.call("HSET", KEYS[1], unit(p, recorded), ARGV[3])
end
for p = 0, wanted - 1 do
  redis.call("HSET", KEYS[1], unit(p, wanted), common)
end
redis.call("HSET", KEYS[2], base, wanted)
return {1}
