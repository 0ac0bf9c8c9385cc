-- Take, keep or give back the lease on one log follower (workers/leases.py), in one step.
-- KEYS[1] the lease (value: the holding process); KEYS[2] "wanted back by its home process"
-- ARGV: this process, the lease's time to live in ms ("0": let it go), "1" when this is the
--       follower's home process, "1" when this process may take a free lease not its own
-- Returns 1 while this process holds the lease, else 0.
local holder = redis.call("GET", KEYS[1])
local home = ARGV[3] == "1"
if ARGV[2] == "0" then
  if holder == ARGV[1] then
    redis.call("DEL", KEYS[1])  -- stopping: free at once for another process
  end
  return 0
end
if holder == ARGV[1] then
  if not home and redis.call("EXISTS", KEYS[2]) == 1 then
    redis.call("DEL", KEYS[1])  -- its home process is back: give it back
    return 0
  end
  redis.call("PEXPIRE", KEYS[1], ARGV[2])
  return 1
end
if not holder then
  if home or ARGV[4] == "1" then
    redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
    if home then
      redis.call("DEL", KEYS[2])
    end
    return 1
  end
  return 0
end
if home then
  redis.call("SET", KEYS[2], ARGV[1], "PX", ARGV[2])
end
return 0
