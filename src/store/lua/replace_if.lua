-- Replaces the current record only if it is still the one the caller read (compare-and-set),
-- and appends the history entry in the same step.
-- KEYS[1] records hash, KEYS[2] history list
-- ARGV[1] requirement id, ARGV[2] expected current JSON, ARGV[3] new JSON, ARGV[4] history entry JSON
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[4])
return 1
