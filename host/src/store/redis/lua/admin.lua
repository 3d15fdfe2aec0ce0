-- Operator actions. ARGV: prefix, time, mode, ...
--   cancel id                  -> {'ok'} | {'nf'} | {'wrong', status}
--   dlq_retry id               -> same
--   dlq_retry_all queue cursor limit -> {n, next cursor ('' = done)}
--   dlq_purge queue cursor limit     -> same
--   purge queue cursor limit         -> same
--   pause queue 0|1            -> {'ok'}
local now = now_micros()
local mode = ARGV[3]

local function fresh_budget(id, key)
  local j = redis.call('HMGET', key, 'queue', 'handler', 'prio', 'attempt', 'max', 'base')
  local attempt = tonumber(j[4])
  set_status(id, j[1], j[3], 'dead', 'pending')
  redis.call('HSET', key, 'run_at', s(now), 'finished', '',
    'max', s(attempt + tonumber(j[5]) - tonumber(j[6])), 'base', s(attempt))
  redis.call('ZADD', k_ready(j[1], j[2], j[3]), s(now), id)
  chain_job_revived(id)
  batch_job_revived(id)
end

if mode == 'cancel' or mode == 'dlq_retry' then
  local id = ARGV[4]
  local key = k_job(id)
  local j = redis.call('HMGET', key, 'status', 'queue', 'handler', 'prio')
  if not j[1] then return { 'nf' } end
  local st = j[1]
  if mode == 'cancel' then
    if st ~= 'scheduled' and st ~= 'pending' and st ~= 'retrying' then return { 'wrong', st } end
    set_status(id, j[2], j[4], st, 'cancelled')
    redis.call('ZREM', k_ready(j[2], j[3], j[4]), id)
    redis.call('HSET', key, 'finished', s(now))
    redis.call('ZADD', K_FINISHED, s(now), id)
    chain_job_ended(now, id, 'cancelled')
    batch_job_ended(now, id, 'cancelled')
    signal('e')
  else
    if st ~= 'dead' then return { 'wrong', st } end
    fresh_budget(id, key)
    signal('w')
  end
  return { 'ok' }
end

if mode == 'pause' then
  redis.call('HSET', K_PAUSED, ARGV[4], ARGV[5])
  if ARGV[5] == '0' then signal('w') end
  return { 'ok' }
end

-- Bulk actions walk one index from a cursor, a bounded step a call.
local queue, cursor, limit = ARGV[4], ARGV[5], tonumber(ARGV[6])
local index
if mode == 'purge' then index = k_idx('q', queue) else index = k_idx('s', 'dead') end
local from = '-'
if cursor ~= '' then from = '(' .. cursor end
local ids = redis.call('ZRANGEBYLEX', index, from, '+', 'LIMIT', 0, limit)
local n = 0
for _, id in ipairs(ids) do
  local key = k_job(id)
  local j = redis.call('HMGET', key, 'status', 'queue')
  if mode == 'purge' then
    if j[1] == 'scheduled' or j[1] == 'pending' or j[1] == 'retrying' then
      -- A purged job of a batch counts as cancelled, so the batch can end.
      batch_job_ended(now, id, 'cancelled')
      remove_job(id)
      n = n + 1
    end
  elseif j[1] == 'dead' and (queue == '' or j[2] == queue) then
    if mode == 'dlq_purge' then
      batch_job_purged(id)
      remove_job(id)
    else
      fresh_budget(id, key)
    end
    n = n + 1
  end
end
if mode == 'dlq_retry_all' and n > 0 then signal('w') end
local next = ''
if #ids == limit then next = ids[#ids] end
return { n, next }
