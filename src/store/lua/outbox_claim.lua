-- Claims due messages: moves each one's due time to the end of a lease, so that no other
-- instance takes it meanwhile and it becomes due again if this one dies before finishing.
-- KEYS[1] queue (zset id -> due ms), KEYS[2] messages (hash id -> JSON)
-- ARGV[1] now (ms), ARGV[2] lease end (ms), ARGV[3] most messages to claim
-- Returns the claimed messages as {id, JSON} pairs.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local json = redis.call('HGET', KEYS[2], id)
  if json then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    table.insert(out, {id, json})
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
