-- Retire a view's rows to the archive tier (projections/cold.py): delete each row only if it
-- still holds the value written to the archive file. A row the view rewrote since stays: the
-- newer value in Redis wins over the archived one for every reader.
--
-- KEYS[1]  the view's row hash (e.g. ol:{s00}:v:interactions:i:acme)
-- ARGV     member, value, member, value, ...
-- Returns the number of rows deleted.
local deleted = 0
for i = 1, #ARGV, 2 do
  if redis.call("HGET", KEYS[1], ARGV[i]) == ARGV[i + 1] then
    deleted = deleted + redis.call("HDEL", KEYS[1], ARGV[i])
  end
end
return deleted
