-- Applies a change and appends its sealed audit entry in one step, only if the audit chain's
-- head is still the one the entry was sealed against (otherwise the caller seals it again).
-- KEYS[1] audit head, KEYS[2] audit log, KEYS[3..] the keys the change touches
-- ARGV[1] expected head ('' for an empty chain), ARGV[2] new head, ARGV[3] sealed entry ('' = none)
-- ARGV[4] guard: 'none' | 'hsetnx' (write once) | 'hget_eq' (compare-and-set) | 'hget_nil' (new)
-- ARGV[5] guard key index into KEYS, ARGV[6] field, ARGV[7] value
-- ARGV[8..] operations, four arguments each: name, key index into KEYS, a, b
--   ('publish': a = channel, b = message; tells other instances what changed, key index unused)
-- Returns 1 when applied, 0 when the guard refused, -1 when the head moved.
local ops = {hset = true, rpush = true, set = true, del = true, hdel = true, sadd = true,
  publish = true}
for i = 8, #ARGV, 4 do
  if not ops[ARGV[i]] then
    return redis.error_reply('apply.lua: unknown operation ' .. tostring(ARGV[i]))
  end
end
local head = redis.call('GET', KEYS[1]) or ''
if ARGV[3] ~= '' and head ~= ARGV[1] then
  return -1
end
local guard = ARGV[4]
if guard == 'hsetnx' then
  if redis.call('HSETNX', KEYS[tonumber(ARGV[5])], ARGV[6], ARGV[7]) == 0 then
    return 0
  end
elseif guard == 'hget_eq' then
  if redis.call('HGET', KEYS[tonumber(ARGV[5])], ARGV[6]) ~= ARGV[7] then
    return 0
  end
elseif guard == 'hget_nil' then
  if redis.call('HEXISTS', KEYS[tonumber(ARGV[5])], ARGV[6]) == 1 then
    return 0
  end
end
for i = 8, #ARGV, 4 do
  local op, key, a, b = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3]
  if op == 'hset' then
    redis.call('HSET', key, a, b)
  elseif op == 'rpush' then
    redis.call('RPUSH', key, a)
  elseif op == 'set' then
    redis.call('SET', key, a)
  elseif op == 'del' then
    redis.call('DEL', key)
  elseif op == 'hdel' then
    redis.call('HDEL', key, a)
  elseif op == 'sadd' then
    redis.call('SADD', key, a)
  elseif op == 'publish' then
    redis.call('PUBLISH', a, b)
  end
end
if ARGV[3] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
