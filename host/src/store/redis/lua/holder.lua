-- What a lease holder does but complete (complete.lua, in batches): renew,
-- fail, release. The holder's (job, fence) must be the current lease, or
-- nothing is written.
-- ARGV: prefix, time, mode, id, fence, then per mode:
--   renew:    lease (µs), lease (ms)
--   fail:     attempt json tail, retry at ('' = bury, 'cancel' = cancelled), has log
--             (0/1), log
--   release:  -
-- The attempt tail is the raw JSON after "host": outcome, message,
-- duration and fuel, written by the host.
local now = now_micros()
local mode, id, fence = ARGV[3], ARGV[4], ARGV[5]
local refused = refuse_holder(id, fence)
if refused then return { refused } end
local key = k_job(id)

if mode == 'renew' then
  local expires = now + tonumber(ARGV[6])
  redis.call('HSET', key, 'expires', s(expires), 'lease_ms', ARGV[7])
  redis.call('ZADD', K_LEASES, s(expires), id)
  return { 'ok', s(expires) }
end

local j = redis.call('HMGET', key, 'queue', 'handler', 'prio', 'attempt', 'max', 'started', 'worker',
  'cancel')
local q, h, p = j[1], j[2], j[3]

if mode == 'release' then
  clear_lease(id)
  set_status(id, q, p, 'running', 'pending')
  redis.call('HINCRBY', key, 'attempt', -1)
  redis.call('HSET', key, 'run_at', s(now))
  redis.call('ZADD', k_ready(q, h, p), s(now), id)
  signal('w')
  return { 'ok', 'pending' }
end

push_attempt(id, '{"attempt":' .. j[4] .. ',"at":' .. j[6] .. ',"host":' .. cjson.encode(j[7])
  .. ',' .. ARGV[6] .. '}')
clear_lease(id)

-- fail
local at = ARGV[7]
if ARGV[8] == '1' then redis.call('HSET', key, 'log', ARGV[9]) end
-- A job someone asked to terminate is not run again.
if at == 'cancel' or (at ~= '' and j[8] == '1') then
  set_status(id, q, p, 'running', 'cancelled')
  redis.call('HSET', key, 'finished', s(now))
  redis.call('ZADD', K_FINISHED, s(now), id)
  chain_job_ended(now, id, 'cancelled')
  batch_job_ended(now, id, 'cancelled')
  signal('e')
  return { 'ok', 'cancelled' }
end
if at ~= '' and tonumber(j[4]) < tonumber(j[5]) then
  set_status(id, q, p, 'running', 'retrying')
  redis.call('HSET', key, 'run_at', at)
  redis.call('ZADD', k_ready(q, h, p), at, id)
  signal('we')
  return { 'ok', 'retrying' }
end
set_status(id, q, p, 'running', 'dead')
redis.call('HSET', key, 'finished', s(now))
chain_job_ended(now, id, 'dead')
batch_job_ended(now, id, 'dead')
signal('e')
return { 'ok', 'dead' }
