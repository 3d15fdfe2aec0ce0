-- Terminating jobs. ARGV: prefix, time, mode, ...
--   request id  -> {'cancelled'} (it was waiting) | {'requested'} (running)
--                  | {'nf'} | {'wrong', status}
--   ask id...   -> the ids that are running with a request recorded
local now = now_micros()
local mode = ARGV[3]

if mode == 'request' then
  local id = ARGV[4]
  local key = k_job(id)
  local j = redis.call('HMGET', key, 'status', 'queue', 'handler', 'prio')
  if not j[1] then return { 'nf' } end
  local st = j[1]
  if st == 'scheduled' or st == 'pending' or st == 'retrying' then
    set_status(id, j[2], j[4], st, 'cancelled')
    redis.call('ZREM', k_ready(j[2], j[3], j[4]), id)
    redis.call('HSET', key, 'finished', s(now))
    redis.call('ZADD', K_FINISHED, s(now), id)
    chain_job_ended(now, id, 'cancelled')
    batch_job_ended(now, id, 'cancelled')
    signal('e')
    return { 'cancelled' }
  end
  if st ~= 'running' then return { 'wrong', st } end
  redis.call('HSET', key, 'cancel', '1')
  -- Every host's change signal ticks; the one running it asks 'ask'.
  signal('w')
  return { 'requested' }
end

-- ask
local found = {}
for i = 4, #ARGV do
  local j = redis.call('HMGET', k_job(ARGV[i]), 'status', 'cancel')
  if j[1] == 'running' and j[2] == '1' then found[#found + 1] = ARGV[i] end
end
return found
