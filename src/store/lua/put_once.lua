-- Writes a record only if its idempotency key was never used for this subject.
-- KEYS[1] subject's idempotency hash, KEYS[2] records hash, KEYS[3] history list
-- ARGV[1] idempotency key, ARGV[2] requirement id, ARGV[3] record JSON, ARGV[4] history entry JSON
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('RPUSH', KEYS[3], ARGV[4])
return 1
