-- Counts a denial into the subject's open case, opening a new case if none is open, unless the
-- same denial (by its id) was counted before: a retried count never counts twice.
-- The keys are the subject's own (one cluster slot); the caller lists the subject among those
-- with cases and marks them for notifications before.
-- KEYS[1] open case id (string), KEYS[2] cases hash (id -> JSON), KEYS[3] the denial ids
-- counted (sorted set: id -> time in ms)
-- ARGV[1] new case id, ARGV[2] subject, ARGV[3] time (RFC 3339, UTC, fixed width),
-- ARGV[4] host, ARGV[5] denial id ('' = not deduplicated), ARGV[6] the denial's time in ms,
-- ARGV[7] how long ids are remembered (ms), ARGV[8..] missing requirement ids
-- Returns the case JSON ('' when the denial was counted before and its case is gone).
local id = redis.call('GET', KEYS[1])
local case
if id then
  local json = redis.call('HGET', KEYS[2], id)
  if json then
    case = cjson.decode(json)
  end
end
local denial = ARGV[5]
if denial ~= '' and redis.call('ZSCORE', KEYS[3], denial) then
  if case then
    return cjson.encode(case)
  end
  return ''
end
if not case then
  id = ARGV[1]
  case = {id = id, subject = ARGV[2], opened_at = ARGV[3], last_seen = ARGV[3], count = 0}
  redis.call('SET', KEYS[1], id)
end
if type(case.apps) ~= 'table' then case.apps = {} end
if type(case.missing) ~= 'table' then case.missing = {} end
case.count = case.count + 1
if ARGV[3] > case.last_seen then
  case.last_seen = ARGV[3]
end
case.apps[ARGV[4]] = (case.apps[ARGV[4]] or 0) + 1
for i = 8, #ARGV do
  case.missing[ARGV[i]] = (case.missing[ARGV[i]] or 0) + 1
end
local out = cjson.encode(case)
redis.call('HSET', KEYS[2], id, out)
if denial ~= '' then
  local ms = tonumber(ARGV[6])
  redis.call('ZADD', KEYS[3], ms, denial)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (ms - tonumber(ARGV[7])))
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -10001)
end
return out
