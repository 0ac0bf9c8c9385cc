-- Forget the weeks the alert follower has checked, unless a batch marked one again since.
-- KEYS[1] the follower's pending hash (week -> token of the batch that marked it)
-- ARGV: week, token, week, token, ... as read before checking
-- A week whose token changed was touched by a later batch: it stays, to be checked again.
local forgotten = 0
for i = 1, #ARGV, 2 do
  if redis.call("HGET", KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call("HDEL", KEYS[1], ARGV[i])
    forgotten = forgotten + 1
  end
end
return forgotten
