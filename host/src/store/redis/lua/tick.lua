-- Claims (schedule, tick) and enqueues its job in one step: exactly one
-- caller gets the job id, every other gets ''.
-- ARGV: prefix, time, idempotency ttl (µs), schedule, tick (µs), then the
-- job's 12 enqueue fields.
local now = now_micros()
local name, tick = ARGV[4], tonumber(ARGV[5])
local field = part(name) .. ARGV[5]
if redis.call('HEXISTS', P .. 'ticks', field) == 1 then return '' end
local id = enqueue_one(now, tonumber(ARGV[3]), 6)
redis.call('HSET', P .. 'ticks', field, id)
redis.call('ZADD', P .. 'ticks_at', ARGV[5], field)
local latest = redis.call('HGET', P .. 'sched_latest', name)
if not latest or tonumber(string.sub(latest, 1, string.find(latest, '|', 1, true) - 1)) < tick then
  redis.call('HSET', P .. 'sched_latest', name, ARGV[5] .. '|' .. id)
end
if redis.call('HEXISTS', P .. 'schedules', name) == 1 then
  local last = redis.call('HGET', P .. 'sched_last', name)
  if not last or tonumber(last) < tick then redis.call('HSET', P .. 'sched_last', name, ARGV[5]) end
end
signal('w')
return id
