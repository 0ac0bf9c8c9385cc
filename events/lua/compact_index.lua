-- Compact index entries of wholly archived aggregates (prepended to the scripts that read an
-- aggregate's index; events/compact.py is the Python side and says why and how).
--
-- An aggregate's index is either its sorted set "a:<id>" (score = version, member = log
-- position) or, once every event of it is archived, one field of a small hash bucket
-- "ah:<first d hex digits of sha1(id)>" for some depth d in 1..archived.depth. Never both:
-- the archiver deletes the set when it writes the entry (compact.lua), the append script
-- deletes the entry when it writes the set again (a new event).
-- The entry: the head hash (20 raw bytes), then LEB128 varints: first version, first
-- position, each later position's distance from the one before (versions are contiguous).

-- The bucket key holding the aggregate's entry and the entry, or nil.
local function compact_find(p, oid)
  local depth = tonumber(redis.call("HGET", p .. "archived", "depth") or "0")
  if depth == 0 then return nil end
  local digest = redis.sha1hex(oid)
  for d = 1, depth do
    local key = p .. "ah:" .. string.sub(digest, 1, d)
    local value = redis.call("HGET", key, oid)
    if value then return key, value end
  end
  return nil
end

-- An entry decoded: {hash = hex, first = first version, top = last version,
-- positions = {position of version first, of first + 1, ...}}.
local function compact_decode(value)
  local hash = string.gsub(string.sub(value, 1, 20), ".", function(c)
    return string.format("%02x", string.byte(c))
  end)
  local numbers, n, scale = {}, 0, 1
  for j = 21, #value do
    local b = string.byte(value, j)
    if b >= 128 then
      n, scale = n + (b - 128) * scale, scale * 128
    else
      numbers[#numbers + 1] = n + b * scale
      n, scale = 0, 1
    end
  end
  local positions, position = {}, 0
  for i = 2, #numbers do
    position = position + numbers[i]
    positions[i - 1] = position
  end
  return {hash = hash, first = numbers[1], top = numbers[1] + #positions - 1, positions = positions}
end

-- The aggregate's compact entry decoded (with .key, its bucket), or nil.
local function compact_index(p, oid)
  local key, value = compact_find(p, oid)
  if not key then return nil end
  local entry = compact_decode(value)
  entry.key = key
  return entry
end

-- Whether a ZRANGEBYSCORE bound ("-inf", "+inf", "N", "(N") admits version v from below / above.
local function above(bound, v)
  if bound == "-inf" then return true end
  if string.sub(bound, 1, 1) == "(" then return v > tonumber(string.sub(bound, 2)) end
  return v >= tonumber(bound)
end
local function below(bound, v)
  if bound == "+inf" then return true end
  if string.sub(bound, 1, 1) == "(" then return v < tonumber(string.sub(bound, 2)) end
  return v <= tonumber(bound)
end

-- The aggregate's index as ZRANGEBYSCORE ... WITHSCORES answers it (position, version, ...),
-- from its sorted set or its compact entry. lo, hi: bounds; desc: newest first; limit: 0 = all.
local function index_range(p, oid, lo, hi, desc, limit)
  local index = p .. "a:" .. oid
  if redis.call("EXISTS", index) == 1 then
    local args = desc and {"ZREVRANGEBYSCORE", index, hi, lo, "WITHSCORES"}
      or {"ZRANGEBYSCORE", index, lo, hi, "WITHSCORES"}
    if limit > 0 then
      args[#args + 1] = "LIMIT"
      args[#args + 1] = 0
      args[#args + 1] = limit
    end
    return redis.call(unpack(args))
  end
  local out = {}
  local entry = compact_index(p, oid)
  if not entry then return out end
  local n = #entry.positions
  for k = 1, n do
    local i = desc and (n - k + 1) or k
    local version = entry.first + i - 1
    if above(lo, version) and below(hi, version) then
      out[#out + 1] = string.format("%.0f", entry.positions[i])
      out[#out + 1] = string.format("%.0f", version)
      if limit > 0 and #out >= 2 * limit then break end
    end
  end
  return out
end
