-- Counts a denial into the subject's open case, opening a new case if none is open.
-- The keys are the subject's own (one cluster slot); the caller lists the subject among those
-- with cases and marks them for notifications before.
-- KEYS[1] open case id (string), KEYS[2] cases hash (id -> JSON)
-- ARGV[1] new case id, ARGV[2] subject, ARGV[3] time (RFC 3339, UTC, fixed width),
-- ARGV[4] host, ARGV[5..] missing requirement ids
-- Returns the case JSON.
local id = redis.call('GET', KEYS[1])
local case
if id then
  local json = redis.call('HGET', KEYS[2], id)
  if json then
    case = cjson.decode(json)
  end
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
for i = 5, #ARGV do
  case.missing[ARGV[i]] = (case.missing[ARGV[i]] or 0) + 1
end
local out = cjson.encode(case)
redis.call('HSET', KEYS[2], id, out)
return out
