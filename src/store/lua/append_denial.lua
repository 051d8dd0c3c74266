-- Appends a denial to the denial log unless one with the same denial id was appended before,
-- so that a retry of a write whose outcome was unknown (a timeout, a broken connection) never
-- writes it twice. The index of written ids shares the stream's cluster slot.
-- KEYS[1] the stream, KEYS[2] the index of written denial ids (sorted set: id -> time in ms)
-- ARGV[1] denial id ('' = not deduplicated), ARGV[2] MAXLEN, ARGV[3] MINID ('' = none),
-- ARGV[4] how long ids are remembered (ms), ARGV[5..] field, value, field, value ...
-- Returns the new entry's id, or false when the denial was already in the log.
local denial = ARGV[1]
if denial ~= '' and redis.call('ZSCORE', KEYS[2], denial) then
  return false
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '=', ARGV[2], '*', unpack(ARGV, 5))
if ARGV[3] ~= '' then
  redis.call('XTRIM', KEYS[1], 'MINID', '=', ARGV[3])
end
if denial ~= '' then
  local ms = tonumber(string.match(id, '^(%d+)'))
  redis.call('ZADD', KEYS[2], ms, denial)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (ms - tonumber(ARGV[4])))
  -- Never more ids than the log keeps entries.
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
end
return id
