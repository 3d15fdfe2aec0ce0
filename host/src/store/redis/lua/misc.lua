-- Small writes that must be atomic. ARGV: prefix, time, mode, ...
--   schedule_upsert name json enabled(0/1) -> 'ok'
--   schedule_enabled name 0/1              -> 'ok' | 'nf'
--   schedule_delete name                   -> 'ok' | 'nf'
--   host_seen id json seen(µs)             -> 'ok' (forgets hosts unseen for a day)
--   host_gone id                           -> 'ok'
--   claim_sweep every(µs)                  -> 1 | 0
--   probe                                  -> 'ok'
local mode = ARGV[3]
local K_SCHED, K_OFF = P .. 'schedules', P .. 'sched_off'
local K_HOSTS, K_SEEN = P .. 'hosts', P .. 'hosts_seen'
if mode == 'schedule_upsert' then
  redis.call('HSET', K_SCHED, ARGV[4], ARGV[5])
  if ARGV[6] == '1' then redis.call('HDEL', K_OFF, ARGV[4]) else redis.call('HSET', K_OFF, ARGV[4], 1) end
  return 'ok'
elseif mode == 'schedule_enabled' then
  if redis.call('HEXISTS', K_SCHED, ARGV[4]) == 0 then return 'nf' end
  if ARGV[5] == '1' then redis.call('HDEL', K_OFF, ARGV[4]) else redis.call('HSET', K_OFF, ARGV[4], 1) end
  return 'ok'
elseif mode == 'schedule_delete' then
  if redis.call('HDEL', K_SCHED, ARGV[4]) == 0 then return 'nf' end
  redis.call('HDEL', K_OFF, ARGV[4])
  redis.call('HDEL', P .. 'sched_last', ARGV[4])
  return 'ok'
elseif mode == 'host_seen' then
  redis.call('HSET', K_HOSTS, ARGV[4], ARGV[5])
  redis.call('ZADD', K_SEEN, ARGV[6], ARGV[4])
  local old = redis.call('ZRANGEBYSCORE', K_SEEN, '-inf', '(' .. s(tonumber(ARGV[6]) - 86400000000))
  for _, id in ipairs(old) do
    redis.call('HDEL', K_HOSTS, id)
    redis.call('ZREM', K_SEEN, id)
  end
  return 'ok'
elseif mode == 'host_gone' then
  redis.call('HDEL', K_HOSTS, ARGV[4])
  redis.call('ZREM', K_SEEN, ARGV[4])
  return 'ok'
elseif mode == 'claim_sweep' then
  local now = now_micros()
  local every = tonumber(ARGV[4])
  local last = tonumber(redis.call('GET', P .. 'last_sweep') or '0')
  if last <= now - math.floor(every / 10) * 9 then
    redis.call('SET', P .. 'last_sweep', s(now))
    return 1
  end
  return 0
elseif mode == 'probe' then
  redis.call('SET', P .. 'health_probe', s(now_micros()))
  return 'ok'
end
return redis.error_reply('unknown write ' .. mode)
