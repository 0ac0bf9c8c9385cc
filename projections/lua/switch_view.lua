-- Switch a view over to the generation a replay built, atomically (docs/replay.md).
-- KEYS[1] the shard's view generations hash; KEYS[2] the shard's tracking hash
-- ARGV[1] view name; ARGV[2] the generation built (must be "<name>~next")
-- ARGV[3] the generation expected current ("" = the first); ARGV[4] its tracking field
-- From the next command on, queries resolve the new generation and a live view's next write
-- to the old one is refused (apply_view.lua), so it moves to the new tracking position.
-- The old generation is noted as "<name>~old" until its keys are gone (a replay killed
-- before removing them removes them on its next run).
-- Returns 1, or an error (nothing written) when another replay switched or took over first.
local next_field, old_field = ARGV[1] .. "~next", ARGV[1] .. "~old"
if redis.call("HGET", KEYS[1], next_field) ~= ARGV[2] then
  return redis.error_reply("REPLAY " .. ARGV[1] .. ": generation " .. ARGV[2] .. " is not the one being built")
end
if (redis.call("HGET", KEYS[1], ARGV[1]) or "") ~= ARGV[3] then
  return redis.error_reply("REPLAY " .. ARGV[1] .. ": the current generation moved")
end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[2], old_field, ARGV[3])
redis.call("HDEL", KEYS[1], next_field)
redis.call("HDEL", KEYS[2], ARGV[4])
return 1
