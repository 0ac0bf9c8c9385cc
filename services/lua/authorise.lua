-- Authenticate an API key and count its tenant's request, in one round trip.
-- KEYS[1] api keys hash (sha256 -> msgpack record); KEYS[2] tenant -> shard hash;
-- KEYS[3] tenant -> requests-per-second hash.
-- ARGV: key digest, the current one-second window, the default limit, the counter prefix.
-- Returns false for an unknown key, {record} for a revoked one (nothing counted), else
-- {record, shard or false, requests in this window, the tenant's limit}.
-- The counter key shares the registry's hash tag (ARGV[4]), so it lies in the declared
-- keys' slot; it cannot be declared because the tenant is known only here.
local record = redis.call("HGET", KEYS[1], ARGV[1])
if not record then
  return false
end
local key = cmsgpack.unpack(record)
if key.revoked then
  return {record}
end
local tenant = key.tenant_id
local shard = redis.call("HGET", KEYS[2], tenant)
local limit = redis.call("HGET", KEYS[3], tenant) or ARGV[3]
local counter = ARGV[4] .. "rate:" .. tenant .. ":" .. ARGV[2]
local count = redis.call("INCR", counter)
if count == 1 then
  redis.call("EXPIRE", counter, 2)
end
return {record, shard, count, tonumber(limit)}
