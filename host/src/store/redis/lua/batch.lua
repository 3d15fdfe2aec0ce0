-- Batches. ARGV: prefix, time, mode, id, ...
--   add id head-json ('' after the first chunk) key-ttl n, then n × (job
--       id, payload) -> {'ok'}: one chunk of jobs (the first also makes the
--       batch and binds its key) | {'nf'} | {'bound', batch, written,
--       total}: the key names an earlier start's batch with the same
--       fingerprint, which holds its first `written` jobs of `total`;
--       nothing written | {'reused', batch}: the key names a batch asked to
--       do something else | {'closed'}: a cancel closed the batch at the
--       jobs it had; nothing written
--   get id -> {} when missing, else {head, total, enqueued, succeeded, dead,
--             cancelled, cfired, sfired, created, finished, running}
--   cancel id -> {'nf'} | {'ok'}: waiting jobs cancelled, running ones
--             asked to stop (as terminate.lua)
local now = now_micros()
local mode, id = ARGV[3], ARGV[4]
local kb = k_batch(id)

if mode == 'add' then
  local head
  if ARGV[5] ~= '' then
    head = cjson.decode(ARGV[5])
    -- A retried call (its reply lost to a dropped connection) adds nothing.
    if redis.call('EXISTS', kb) == 1 then return { 'ok' } end
    local key = head.key
    if key then
      local bound = redis.call('HGET', K_IDEM, key)
      if bound then
        local sep = string.find(bound, '|', 1, true)
        local earlier = string.sub(bound, 1, sep - 1)
        local b = redis.call('HMGET', k_batch(earlier), 'head', 'enqueued', 'total')
        if tonumber(string.sub(bound, sep + 1)) > now and b[1] then
          if cjson.decode(b[1]).fingerprint ~= head.fingerprint then return { 'reused', earlier } end
          return { 'bound', earlier, b[2], b[3] }
        end
      end
    end
    redis.call('HSET', kb, 'head', ARGV[5], 'total', s(head.total), 'enqueued', 0,
      'succeeded', 0, 'dead', 0, 'cancelled', 0, 'purged', 0, 'cfired', '0', 'sfired', '0',
      'created', s(now), 'finished', '')
    if key then
      local expires = now + tonumber(ARGV[6])
      redis.call('HSET', K_IDEM, key, id .. '|' .. s(expires))
      redis.call('ZADD', K_IDEM_EXP, s(expires), key)
    end
  else
    local b = redis.call('HMGET', kb, 'head', 'enqueued', 'total')
    if not b[1] then return { 'nf' } end
    if tonumber(b[2]) >= tonumber(b[3]) then return { 'closed' } end
    head = cjson.decode(b[1])
  end
  local n = tonumber(ARGV[7])
  local q, h, p, max = head.queue, head.handler, tostring(head.priority), tostring(head.max_attempts)
  local added = 0
  for i = 0, n - 1 do
    local job, payload = ARGV[8 + i * 2], ARGV[9 + i * 2]
    if redis.call('EXISTS', k_job(job)) == 0 then
      add_job(now, job, q, h, payload, p, now, max, '', '', head.retry)
      redis.call('HSET', k_job(job), 'batch', id)
      redis.call('SADD', k_batch_open(id), job)
      added = added + 1
    end
  end
  redis.call('HINCRBY', kb, 'enqueued', added)
  if added > 0 then signal('w') end
  return { 'ok' }
end

if mode == 'cancel' then
  if redis.call('EXISTS', kb) == 0 then return { 'nf' } end
  -- A batch whose start has not written every job (its maker died, or is
  -- still writing) is closed at the jobs it has: no more are written, and
  -- it finishes with them.
  local t = redis.call('HMGET', kb, 'enqueued', 'total')
  local closed = tonumber(t[1]) < tonumber(t[2])
  if closed then redis.call('HSET', kb, 'total', t[1]) end
  local cancelled, requested = 0, 0
  for _, job in ipairs(redis.call('SMEMBERS', k_batch_open(id))) do
    local key = k_job(job)
    local j = redis.call('HMGET', key, 'status', 'queue', 'handler', 'prio')
    local st = j[1]
    if st == 'scheduled' or st == 'pending' or st == 'retrying' then
      set_status(job, j[2], j[4], st, 'cancelled')
      redis.call('ZREM', k_ready(j[2], j[3], j[4]), job)
      redis.call('HSET', key, 'finished', s(now))
      redis.call('ZADD', K_FINISHED, s(now), job)
      redis.call('SREM', k_batch_open(id), job)
      cancelled = cancelled + 1
    elseif st == 'running' then
      redis.call('HSET', key, 'cancel', '1')
      requested = requested + 1
    end
  end
  if cancelled > 0 then
    batch_count(now, id, 'cancelled', cancelled)
    signal('e')
  end
  -- Every host's change signal ticks; the ones running them ask.
  if requested > 0 then signal('w') end
  if closed then batch_settle(now, id) end
  return { 'ok' }
end

-- get
local f = redis.call('HMGET', kb, 'head', 'total', 'enqueued', 'succeeded', 'dead', 'cancelled',
  'cfired', 'sfired', 'created', 'finished')
if not f[1] then return {} end
-- Running jobs store-wide are few (bounded by the hosts' workers), unlike
-- a batch's unfinished ones: count those of this batch among them.
local running = 0
for _, job in ipairs(redis.call('ZRANGE', k_idx('s', 'running'), 0, -1)) do
  if redis.call('SISMEMBER', k_batch_open(id), job) == 1 then running = running + 1 end
end
f[11] = s(running)
return f
