-- Closes the subject's open case as of ARGV[1]; returns its JSON, or nil when none was open.
-- KEYS[1] open case id (string), KEYS[2] cases hash (id -> JSON)
local id = redis.call('GET', KEYS[1])
if not id then
  return nil
end
redis.call('DEL', KEYS[1])
local json = redis.call('HGET', KEYS[2], id)
if not json then
  return nil
end
local case = cjson.decode(json)
case.closed_at = ARGV[1]
local out = cjson.encode(case)
redis.call('HSET', KEYS[2], id, out)
return out
