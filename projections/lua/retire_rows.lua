-- Retire a view's rows to the archive tier (projections/cold.py): delete each row only if it
-- still holds the value written to the archive file, and with it the row's entries in the
-- view's indexes (sorted sets and hashes keyed by the same member). A row the view rewrote
-- since stays, indexes and all: the newer value in Redis wins over the archived one.
--
-- KEYS[1]  the view's row hash (e.g. ol:{s00}:v:interactions:i:acme)
-- ARGV     per row: member, value, n, then n index keys (same shard prefix: same slot)
-- Returns the number of rows deleted.
local deleted = 0
local i = 1
while i <= #ARGV do
  local member, value, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if redis.call("HGET", KEYS[1], member) == value then
    deleted = deleted + redis.call("HDEL", KEYS[1], member)
    for j = i + 3, i + 2 + n do
      local kind = redis.call("TYPE", ARGV[j]).ok
      if kind == "zset" then
        redis.call("ZREM", ARGV[j], member)
      elseif kind == "hash" then
        redis.call("HDEL", ARGV[j], member)
      end
    end
  end
  i = i + 3 + n
end
return deleted
