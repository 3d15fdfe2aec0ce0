-- Shared head of every script (prepended by scripts.rs): key names, the
-- clock, and the upkeep of a job's indexes and counts.
--
-- ARGV[1] is the key prefix, ARGV[2] the time override ('' = Redis TIME;
-- only test builds pass a time). Keys are built here from the prefix, so
-- the store needs a single Redis (not a cluster).

local P = ARGV[1]

-- Numbers go to Redis as integer text: the default conversion of a Lua
-- number may print an exponent and lose microseconds.
local function s(n) return string.format('%.0f', n) end

local function now_micros()
  if ARGV[2] ~= '' then return tonumber(ARGV[2]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- A name inside a key, length first, so no two names can spell another's.
local function part(x) return #x .. ':' .. x end

local function k_job(id) return P .. 'job:' .. id end
-- Waiting jobs (scheduled, pending, retrying) of one queue, handler and
-- priority, scored by run-at: a host only scans the handlers it serves.
local function k_ready(q, h, p) return P .. 'ready:' .. part(q) .. part(h) .. p end
-- Jobs stored as `scheduled`, scored by run-at: the due ones count and list
-- as pending.
local function k_sched(q, p) return P .. 'sched:' .. part(q) .. p end
local function k_idx(kind, v) return P .. 'idx:' .. kind .. ':' .. v end
local K_ALL = P .. 'idx:all'
local K_LEASES = P .. 'leases'
local K_FINISHED = P .. 'finished'
local K_COUNTS = P .. 'counts'
local K_QUEUES = P .. 'queues'
local K_PAUSED = P .. 'paused'
local K_IDEM = P .. 'idem'
local K_IDEM_EXP = P .. 'idem_exp'
local K_SIGNAL = P .. 'signal'
-- Scoped unique key -> the job that last took it (active or not: the
-- holder's status decides).
local K_UNIQ = P .. 'uniq'

-- Count changes are summed per cell and written once at the end of the
-- script (scripts.rs wraps every body to call flush_counts), so a batch of
-- 64 leases writes two cells, not 128.
local DELTAS = {}
local function count(q, p, status, n)
  local cell = part(q) .. p .. ':' .. status
  DELTAS[cell] = (DELTAS[cell] or 0) + n
end
local function flush_counts()
  for cell, n in pairs(DELTAS) do
    if n ~= 0 then redis.call('HINCRBY', K_COUNTS, cell, n) end
  end
  DELTAS = {}
end

local function signal(what) redis.call('PUBLISH', K_SIGNAL, what) end

-- Flow limits: handler -> the next start its rate booked (µs).
local K_LIMITS = P .. 'limits'

-- A limited handler's running jobs (on every host) and booked next start.
local function limit_standing(h)
  local running = redis.call('ZINTERCARD', 2, k_idx('s', 'running'), k_idx('h', h))
  return running, tonumber(redis.call('HGET', K_LIMITS, h) or '')
end

-- How many jobs of `h` may start at `now` (as HandlerLimit::budget): what
-- concurrency `conc` (0: none) leaves, at most one when the rate's
-- interval `iv` (µs, 0: none) applies, none before its booked start.
local function limit_budget(now, h, iv, conc)
  local running, nxt = limit_standing(h)
  local left = 1000000000
  if conc > 0 then left = math.max(0, conc - running) end
  if iv > 0 then
    if nxt and nxt > now then left = 0 else left = math.min(left, 1) end
  end
  return left, nxt
end

-- Moves a job between states: status index, counts, scheduled set.
local function set_status(id, q, p, from, to)
  if from == to then return end
  redis.call('ZREM', k_idx('s', from), id)
  redis.call('ZADD', k_idx('s', to), 0, id)
  count(q, p, from, -1)
  count(q, p, to, 1)
  if from == 'scheduled' then redis.call('ZREM', k_sched(q, p), id) end
  redis.call('HSET', k_job(id), 'status', to)
end

-- Appends one raw JSON attempt to a job's history.
local function push_attempt(id, entry)
  local hist = redis.call('HGET', k_job(id), 'hist')
  if hist == '[]' then
    hist = '[' .. entry .. ']'
  else
    hist = string.sub(hist, 1, -2) .. ',' .. entry .. ']'
  end
  redis.call('HSET', k_job(id), 'hist', hist)
end

local function clear_lease(id)
  redis.call('HSET', k_job(id), 'fence', '', 'worker', '', 'expires', '')
  redis.call('ZREM', K_LEASES, id)
end

-- Removes a job and every trace of it (not its idempotency key).
local function remove_job(id)
  local j = redis.call('HMGET', k_job(id), 'queue', 'handler', 'prio', 'status', 'sched', 'ukey')
  if not j[1] then return false end
  local q, h, p, st, sch = j[1], j[2], j[3], j[4], j[5]
  if j[6] and j[6] ~= '' and redis.call('HGET', K_UNIQ, j[6]) == id then
    redis.call('HDEL', K_UNIQ, j[6])
  end
  redis.call('ZREM', K_ALL, id)
  redis.call('ZREM', k_idx('q', q), id)
  redis.call('ZREM', k_idx('h', h), id)
  redis.call('ZREM', k_idx('s', st), id)
  if sch and sch ~= '' then redis.call('ZREM', k_idx('sch', sch), id) end
  redis.call('ZREM', k_ready(q, h, p), id)
  redis.call('ZREM', k_sched(q, p), id)
  redis.call('ZREM', K_LEASES, id)
  redis.call('ZREM', K_FINISHED, id)
  count(q, p, st, -1)
  redis.call('DEL', k_job(id))
  return true
end

-- Stores a new job with its indexes and counts.
local function add_job(now, id, q, h, payload, p, run_at, max, ikey, sch, retry)
  local status = 'pending'
  if run_at > now then status = 'scheduled' end
  redis.call('HSET', k_job(id), 'id', id, 'queue', q, 'handler', h, 'payload', payload,
    'prio', p, 'status', status, 'attempt', 0, 'max', max, 'base', 0, 'run_at', s(run_at),
    'created', s(now), 'hist', '[]', 'ikey', ikey, 'sched', sch)
  -- The job's own retry policy (JSON text); most jobs have none.
  if retry and retry ~= '' then redis.call('HSET', k_job(id), 'retry', retry) end
  redis.call('ZADD', K_ALL, 0, id)
  redis.call('ZADD', k_idx('q', q), 0, id)
  redis.call('ZADD', k_idx('h', h), 0, id)
  redis.call('ZADD', k_idx('s', status), 0, id)
  if sch ~= '' then redis.call('ZADD', k_idx('sch', sch), 0, id) end
  count(q, p, status, 1)
  redis.call('ZADD', k_ready(q, h, p), s(run_at), id)
  if status == 'scheduled' then redis.call('ZADD', k_sched(q, p), s(run_at), id) end
  redis.call('SADD', K_QUEUES, q)
end

-- Adds one job (or answers the job its live idempotency key is bound to).
-- Fields from `base`: id, queue, handler, payload, priority, run_at ('' =
-- now), max attempts, key, scoped key, schedule, scoped unique key, own
-- retry policy ('' = the handler's).
-- Answers id, created (0/1).
local function enqueue_one(now, ttl, base)
  local id, q, h, payload, p = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4]
  local run_at, max, ikey, scoped, sch = ARGV[base + 5], ARGV[base + 6], ARGV[base + 7], ARGV[base + 8], ARGV[base + 9]
  local ukey, retry = ARGV[base + 10], ARGV[base + 11]
  if scoped ~= '' then
    local bound = redis.call('HGET', K_IDEM, scoped)
    if bound then
      local sep = string.find(bound, '|', 1, true)
      if tonumber(string.sub(bound, sep + 1)) > now then
        return string.sub(bound, 1, sep - 1), 0
      end
    end
  end
  if ukey ~= '' then
    local holder = redis.call('HGET', K_UNIQ, ukey)
    if holder then
      local st = redis.call('HGET', k_job(holder), 'status')
      if st == 'scheduled' or st == 'pending' or st == 'running' or st == 'retrying' then
        return holder, 0
      end
    end
  end
  -- A retried call (its reply lost to a dropped connection) adds nothing.
  if redis.call('EXISTS', k_job(id)) == 1 then return id, 1 end
  if run_at == '' then run_at = now else run_at = tonumber(run_at) end
  add_job(now, id, q, h, payload, p, run_at, max, ikey, sch, retry)
  if ukey ~= '' then
    redis.call('HSET', K_UNIQ, ukey, id)
    redis.call('HSET', k_job(id), 'ukey', ukey)
  end
  if scoped ~= '' then
    local expires = now + ttl
    redis.call('HSET', K_IDEM, scoped, id .. '|' .. s(expires))
    redis.call('ZADD', K_IDEM_EXP, s(expires), scoped)
  end
  return id, 1
end

-- A JSON object's text (`payload`) with the member `first` (raw JSON
-- text: `"name":value`) spliced in front of its own members.
local function with_first(first, payload)
  if payload == '{}' then return '{' .. first .. '}' end
  return '{' .. first .. ',' .. string.sub(payload, 2)
end

-- Chains: a hash per chain (status, steps JSON, created, finished); each
-- step's job carries 'chain' and 'cstep' (0-based).
local function k_chain(id) return P .. 'chain:' .. id end
-- Succeeded and cancelled chains by finish time, for the retention sweep.
local K_CHAINS_DONE = P .. 'chains_done'

-- Enqueues step `n` (0-based) of chain `c` with `payload` (JSON text).
local function add_chain_step(now, c, steps, n, payload)
  local st = steps[n + 1]
  add_job(now, st.job, st.queue, st.handler, payload, tostring(st.priority), now,
    tostring(st.max_attempts), '', '', st.retry)
  redis.call('HSET', k_job(st.job), 'chain', c, 'cstep', tostring(n))
  signal('w')
end

-- Moves a job's chain on once the job reached `status` ('succeeded' with
-- `result`, JSON text): its next step, or the chain's own end.
local function chain_job_ended(now, id, status, result)
  local j = redis.call('HMGET', k_job(id), 'chain', 'cstep')
  if not j[1] or j[1] == '' then return end
  local c, n = j[1], tonumber(j[2])
  local ended
  if status == 'succeeded' then
    local steps = cjson.decode(redis.call('HGET', k_chain(c), 'steps'))
    local nxt = steps[n + 2]
    if nxt then
      add_chain_step(now, c, steps, n + 1, with_first('"previous":' .. result, nxt.payload))
      return
    end
    ended = 'succeeded'
  elseif status == 'dead' then
    ended = 'failed'
  elseif status == 'cancelled' then
    ended = 'cancelled'
  else
    return
  end
  redis.call('HSET', k_chain(c), 'status', ended, 'finished', s(now))
  if ended ~= 'failed' then redis.call('ZADD', K_CHAINS_DONE, s(now), c) end
end

-- A chain whose failed step went back to its queue runs again.
local function chain_job_revived(id)
  local c = redis.call('HGET', k_job(id), 'chain')
  if c and c ~= '' then redis.call('HSET', k_chain(c), 'status', 'running', 'finished', '') end
end

-- Batches: a hash per batch (head JSON, total, enqueued, the succeeded,
-- dead and cancelled counters, the callbacks' fired flags, created,
-- finished) and a set of its unfinished jobs; each job carries 'batch'.
local function k_batch(id) return P .. 'batch:' .. id end
local function k_batch_open(id) return P .. 'batch_open:' .. id end
-- Finished batches none of whose dead jobs is left in the DLQ ('dead'
-- equals 'purged'), by finish time, for the sweep.
local K_BATCHES_DONE = P .. 'batches_done'

-- Enqueues a batch callback (stored like a chain step) under its fixed id,
-- the batch id spliced in front of its payload.
local function fire_batch_callback(now, b, cb)
  add_job(now, cb.job, cb.queue, cb.handler, with_first('"batch":"' .. b .. '"', cb.payload),
    tostring(cb.priority), now, tostring(cb.max_attempts), '', '', cb.retry)
  signal('w')
end

-- Marks a batch finished once every job is, and enqueues the callbacks
-- that became due and were not fired yet.
local function batch_settle(now, b)
  local f = redis.call('HMGET', k_batch(b), 'total', 'succeeded', 'dead', 'cancelled', 'finished',
    'cfired', 'sfired', 'head', 'purged')
  if not f[1] then return end
  local total, ok, dead = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
  if ok + dead + tonumber(f[4]) < total then return end
  if f[5] == '' then
    redis.call('HSET', k_batch(b), 'finished', s(now))
    if dead == tonumber(f[9] or 0) then redis.call('ZADD', K_BATCHES_DONE, s(now), b) end
  end
  local head = cjson.decode(f[8])
  if f[6] == '0' and type(head.on_complete) == 'table' then
    fire_batch_callback(now, b, head.on_complete)
    redis.call('HSET', k_batch(b), 'cfired', '1')
  end
  if f[7] == '0' and ok == total and type(head.on_success) == 'table' then
    fire_batch_callback(now, b, head.on_success)
    redis.call('HSET', k_batch(b), 'sfired', '1')
  end
end

-- Counts `n` jobs of batch `b` reaching final `status`.
local function batch_count(now, b, status, n)
  if redis.call('EXISTS', k_batch(b)) == 0 then return end
  redis.call('HINCRBY', k_batch(b), status, n)
  batch_settle(now, b)
end

-- Counts job `id`'s end in its batch (`b`, or read from the job).
local function batch_job_ended(now, id, status, b)
  if b == nil then b = redis.call('HGET', k_job(id), 'batch') end
  if not b or b == '' then return end
  redis.call('SREM', k_batch_open(b), id)
  batch_count(now, b, status, 1)
end

-- A dead job of a batch went back to its queue: unfinished again.
local function batch_job_revived(id)
  local b = redis.call('HGET', k_job(id), 'batch')
  if not b or b == '' or redis.call('EXISTS', k_batch(b)) == 0 then return end
  redis.call('SADD', k_batch_open(b), id)
  redis.call('HINCRBY', k_batch(b), 'dead', -1)
  redis.call('HSET', k_batch(b), 'finished', '')
  redis.call('ZREM', K_BATCHES_DONE, b)
end

-- A dead job of a batch is purged from the DLQ: once none is left there,
-- a finished batch goes to the sweep.
local function batch_job_purged(id)
  local b = redis.call('HGET', k_job(id), 'batch')
  if not b or b == '' or redis.call('EXISTS', k_batch(b)) == 0 then return end
  local purged = redis.call('HINCRBY', k_batch(b), 'purged', 1)
  local f = redis.call('HMGET', k_batch(b), 'dead', 'finished')
  if tonumber(f[1]) == purged and f[2] and f[2] ~= '' then
    redis.call('ZADD', K_BATCHES_DONE, f[2], b)
  end
end

-- Returns jobs whose lease expired (by the store's time) to their queue, or
-- to the DLQ when out of attempts, each with a lease-expired attempt.
local function reap(now, limit)
  local ids = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', s(now), 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    local j = redis.call('HMGET', k_job(id), 'queue', 'handler', 'prio', 'attempt', 'max',
      'started', 'worker', 'expires', 'cancel')
    local q, h, p = j[1], j[2], j[3]
    local attempt, max = tonumber(j[4]), tonumber(j[5])
    local started, expires = tonumber(j[6]), tonumber(j[8])
    local ran = math.max(0, math.floor((expires - started) / 1000))
    push_attempt(id, '{"attempt":' .. s(attempt) .. ',"at":' .. s(started) .. ',"host":'
      .. cjson.encode(j[7]) .. ',"outcome":"lease-expired","expired_at":' .. s(expires)
      .. ',"duration_ms":' .. s(ran) .. '}')
    clear_lease(id)
    redis.call('HSET', k_job(id), 'run_at', s(now))
    if j[9] == '1' then
      -- Its termination was asked for and its host died first: it ends here.
      set_status(id, q, p, 'running', 'cancelled')
      redis.call('HSET', k_job(id), 'finished', s(now))
      redis.call('ZADD', K_FINISHED, s(now), id)
      chain_job_ended(now, id, 'cancelled')
      batch_job_ended(now, id, 'cancelled')
    elseif attempt >= max then
      set_status(id, q, p, 'running', 'dead')
      redis.call('HSET', k_job(id), 'finished', s(now))
      chain_job_ended(now, id, 'dead')
      batch_job_ended(now, id, 'dead')
    else
      set_status(id, q, p, 'running', 'retrying')
      redis.call('ZADD', k_ready(q, h, p), s(now), id)
    end
  end
  if #ids > 0 then signal('we') end
  return #ids
end

-- The holder check of every lease-holder write: 'nf', 'lost' or nil.
local function refuse_holder(id, fence)
  local j = redis.call('HMGET', k_job(id), 'status', 'fence')
  if not j[1] then return 'nf' end
  if j[1] ~= 'running' or j[2] ~= fence then return 'lost' end
  return nil
end
