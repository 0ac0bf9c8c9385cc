-- Commit a batch of saves to a shard's log, each save all-or-nothing.
--
-- Several concurrent saves arrive in one call (group commit). For each save every
-- precondition is checked first -- a Lua script does not roll back -- and only then
-- is anything written. A failing save does not affect the others in the batch.
--
-- An aggregate's index is its sorted set "a:<id>", or its compact entry once every event of
-- it is archived (compact_index.lua, prepended); a new event writes the set again.
--
-- KEYS[1]  the shard's log stream (routes the call to the shard's cluster slot)
-- ARGV[1]  the shard's key prefix, e.g. "ol:{s00}:"; every key below starts with it
-- ARGV[2]  msgpack array of saves; a save is {events, opts}
--            events: array of {originator_id, version, topic, state}
--            opts:   map; t = tenant, k = idempotency key (full key name),
--                    b = body digest, r = receipt, ttl = seconds,
--                    x = array of {originator_id, expected head version (0 = none)},
--                    tr = {tracking application name, notification id},
--                    z = array of {timer, due time in ms} for the shard's scheduler,
--                    pub = array of {stream key, index of the event in the save, field,
--                          value, ...}: an entry of a published stream whose id is that
--                          event's log position (keys start with the prefix: one slot)
-- Returns a msgpack array, one result per save:
--   {"ok", first_nid, count}
--   {"dup", receipt, first_nid, count}   idempotent repeat, nothing written
--   {"integrity", reason} | {"conflict", reason} | {"idem", reason}
local log = KEYS[1]
local p = ARGV[1]
local saves = cmsgpack.unpack(ARGV[2])
local ZERO = "0000000000000000000000000000000000000000"

local head = redis.call("HMGET", p .. "head", "n", "c")
local last_nid = tonumber(head[1]) or 0
local last_chain = head[2] or ZERO
local start_nid = last_nid
local fmt = function(n) return string.format("%.0f", n) end

-- {version, hash} of an aggregate's newest event, cached for this call.
local heads = {}
-- highest version recorded for an aggregate (absent: none): a version above it
-- cannot be a duplicate, so only versions at or below it need a lookup.
local tops = {}
-- the compact entry of a wholly archived aggregate (compact_index.lua), until this call
-- writes the aggregate's sorted set again (expand)
local compacts = {}
local function agg_head(oid)
  local cached = heads[oid]
  if cached ~= nil then return cached end
  local top = redis.call("ZRANGE", p .. "a:" .. oid, -1, -1, "WITHSCORES")
  local result = false
  if #top > 0 then
    local hash = ZERO
    local entry = redis.call("XRANGE", log, top[1] .. "-0", top[1] .. "-0")
    if #entry == 0 then
      -- moved to the archive tier: the archiver left its hash here (services/archive.py)
      local archived = redis.call("HGET", p .. "archived-heads", oid)
      if not archived or string.sub(archived, 1, #top[1] + 1) ~= top[1] .. " " then
        error("log entry " .. top[1] .. " of " .. oid .. " is missing")
      end
      hash = string.sub(archived, #top[1] + 2)
    else
      local f = entry[1][2]
      for i = 1, #f, 2 do
        if f[i] == "h" then hash = f[i + 1] end
      end
    end
    result = {tonumber(top[2]), hash}
    tops[oid] = result[1]
  else
    local compact = compact_index(p, oid)
    if compact then
      compacts[oid] = compact
      result = {compact.top, compact.hash}
      tops[oid] = compact.top
    end
  end
  heads[oid] = result
  return result
end

-- Whether the aggregate already has this version (at or below its top).
local function recorded(oid, version)
  local compact = compacts[oid]
  if compact then return version >= compact.first and version <= compact.top end
  return redis.call("ZCOUNT", p .. "a:" .. oid, version, version) > 0
end

-- A compact aggregate gets an event: its versions go back to its sorted set, the entry goes.
local function expand(oid)
  local compact = compacts[oid]
  if not compact then return end
  local args = {}
  for i, position in ipairs(compact.positions) do
    args[#args + 1] = fmt(compact.first + i - 1)
    args[#args + 1] = fmt(position)
  end
  redis.call("ZADD", p .. "a:" .. oid, unpack(args))
  redis.call("HDEL", compact.key, oid)
  compacts[oid] = nil
end

local function check(save)
  local events, opts = save[1], save[2]
  if opts.k then
    local stored = redis.call("GET", opts.k)
    if stored then
      local s = cmsgpack.unpack(stored)
      if s[1] == opts.b then return {"dup", s[2], s[3], s[4]} end
      return {"idem", "idempotency key reused with a different body"}
    end
  end
  if opts.x then
    for _, x in ipairs(opts.x) do
      local hd = agg_head(x[1])
      local current = hd and hd[1] or 0
      if current ~= x[2] then
        return {"conflict", x[1] .. " is at version " .. fmt(current) .. ", expected " .. fmt(x[2])}
      end
    end
  end
  if opts.tr then
    local cur = redis.call("HGET", p .. "tracking", opts.tr[1])
    if cur and tonumber(cur) >= opts.tr[2] then
      return {"integrity", "tracking " .. opts.tr[1] .. " already at " .. cur}
    end
  end
  for _, pb in ipairs(opts.pub or {}) do
    if string.sub(pb[1], 1, #p) ~= p or not events[pb[2]] then
      return {"integrity", "published entry outside the shard or the save: " .. pb[1]}
    end
  end
  local seen = {}  -- originator id -> set of versions in this save
  for _, e in ipairs(events) do
    local oid, version = e[1], e[2]
    local versions = seen[oid]
    if versions == nil then
      versions = {}
      seen[oid] = versions
      agg_head(oid)
    end
    local top = tops[oid]
    if versions[version] or (top and version <= top and recorded(oid, version)) then
      return {"integrity", "event " .. oid .. " version " .. fmt(version) .. " already recorded"}
    end
    versions[version] = true
  end
  return nil
end

local function write(save)
  local events, opts = save[1], save[2]
  local first = last_nid + 1
  -- one ZADD per aggregate and save: its {version, nid} pairs, aggregates in first-seen order
  local index, touched, nids = {}, {}, {}
  for i, e in ipairs(events) do
    local oid, version, topic, state = e[1], fmt(e[2]), e[3], e[4]
    last_nid = last_nid + 1
    local nid = fmt(last_nid)
    nids[i] = nid
    local hd = agg_head(oid)
    local prev = hd and hd[2] or ZERO
    local hash = redis.sha1hex(prev .. "\n" .. oid .. "\n" .. version .. "\n" .. topic .. "\n" .. state)
    last_chain = redis.sha1hex(last_chain .. "\n" .. nid .. "\n" .. hash)
    if opts.t then
      redis.call("XADD", log, nid .. "-0", "o", oid, "v", version, "t", topic, "s", state,
        "h", hash, "c", last_chain, "n", opts.t)
      redis.call("XADD", p .. "t:" .. opts.t, nid .. "-0", "n", "")
    else
      redis.call("XADD", log, nid .. "-0", "o", oid, "v", version, "t", topic, "s", state,
        "h", hash, "c", last_chain)
    end
    local args = index[oid]
    if args == nil then
      expand(oid)
      args = {}
      index[oid] = args
      touched[#touched + 1] = oid
    end
    args[#args + 1] = version
    args[#args + 1] = nid
    if #args >= 1000 then  -- unpack() has a limit: write long runs as they come
      redis.call("ZADD", p .. "a:" .. oid, unpack(args))
      index[oid] = {}
    end
    heads[oid] = {e[2], hash}
    local top = tops[oid]
    if not top or e[2] > top then tops[oid] = e[2] end
  end
  for _, oid in ipairs(touched) do
    if #index[oid] > 0 then redis.call("ZADD", p .. "a:" .. oid, unpack(index[oid])) end
  end
  if opts.tr then
    redis.call("HSET", p .. "tracking", opts.tr[1], fmt(opts.tr[2]))
  end
  if opts.z then
    -- timers set by these events, durable with them (the shard's scheduler)
    for _, z in ipairs(opts.z) do
      redis.call("ZADD", p .. "timers", z[2], z[1])
    end
  end
  if opts.pub then
    for _, pb in ipairs(opts.pub) do
      redis.call("XADD", pb[1], nids[pb[2]] .. "-0", unpack(pb, 3))
    end
  end
  local count = last_nid - first + 1
  if opts.k then
    redis.call("SET", opts.k, cmsgpack.pack({opts.b, opts.r or "", first, count}),
      "EX", opts.ttl or 172800)
  end
  return {"ok", first, count}
end

local results = {}
for i, save in ipairs(saves) do
  local failed = check(save)
  if failed then
    results[i] = failed
  else
    results[i] = write(save)
  end
end
if last_nid ~= start_nid then
  redis.call("HSET", p .. "head", "n", fmt(last_nid), "c", last_chain)
end
return cmsgpack.pack(results)
