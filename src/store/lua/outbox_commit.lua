-- One step of the notification worker, all or nothing: consume dirty marks that are unchanged,
-- check and move a recipient's rate limit, enqueue messages.
-- KEYS[1] dirty marks (zset subject -> ms), KEYS[2] last sends (hash key -> ms),
-- KEYS[3] messages (hash id -> JSON), KEYS[4] queue (zset id -> due ms)
-- ARGV[1] now (ms), ARGV[2] number of marks n, ARGV[3] rate-limit key ('' for none),
-- ARGV[4] latest last-send (ms) that still allows sending,
-- ARGV[5] guard token ('' for none), ARGV[6] how long the guard is kept once committed (ms),
-- ARGV[7 .. 6+2n] marks as (subject, ms), then messages as (id, JSON).
-- KEYS[5] (with a guard token) the once-only lease this batch completes.
-- Returns 1 when written, 0 when a mark changed, the rate limit forbids sending, or the guard
-- is no longer held with the token (its lease ran out).
local n = tonumber(ARGV[2])
local rate_key = ARGV[3]
local token = ARGV[5]
if token ~= '' then
  if redis.call('GET', KEYS[5]) ~= token then
    return 0
  end
end
for k = 0, n - 1 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[7 + 2 * k])
  if (not score) or tonumber(score) ~= tonumber(ARGV[8 + 2 * k]) then
    return 0
  end
end
if rate_key ~= '' then
  local last = redis.call('HGET', KEYS[2], rate_key)
  if last and tonumber(last) > tonumber(ARGV[4]) then
    return 0
  end
end
for k = 0, n - 1 do
  redis.call('ZREM', KEYS[1], ARGV[7 + 2 * k])
end
if rate_key ~= '' then
  redis.call('HSET', KEYS[2], rate_key, ARGV[1])
end
local i = 7 + 2 * n
while i < #ARGV do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[4], ARGV[1], ARGV[i])
  i = i + 2
end
if token ~= '' then
  redis.call('SET', KEYS[5], token, 'PX', tonumber(ARGV[6]))
end
return 1
