-- Reap expired leases, then lease up to `max` due jobs: strict priority,
-- then run-at, then id, over every (queue, handler) pair asked for, so a
-- host that serves only some handlers never scans past other handlers' jobs.
-- A handler with flow limits takes no more than its budget (see
-- limit_budget); the next start its rate booked is written here, in the
-- same script as the lease, so all hosts count against one budget.
-- ARGV: prefix, time, worker, lease (µs), lease (ms), max, reap limit,
-- #queues, queues..., #handlers, handlers..., #limits, then per limit
-- handler, interval (µs, 0: none), concurrency (0: none); then `max` fences.
local now = now_micros()
local worker, lease_us, lease_ms = ARGV[3], tonumber(ARGV[4]), ARGV[5]
local max = tonumber(ARGV[6])
reap(now, tonumber(ARGV[7]))
local nq = tonumber(ARGV[8])
local queues = {}
for i = 1, nq do
  local q = ARGV[8 + i]
  if redis.call('HGET', K_PAUSED, q) ~= '1' then queues[#queues + 1] = q end
end
local nh = tonumber(ARGV[9 + nq])
local handlers = {}
for i = 1, nh do handlers[i] = ARGV[9 + nq + i] end
local nl = tonumber(ARGV[10 + nq + nh])
-- handler -> { interval, budget left, budget, booked next start }
local limits = {}
for i = 0, nl - 1 do
  local b = 11 + nq + nh + i * 3
  local h, iv = ARGV[b], tonumber(ARGV[b + 1])
  local left, nxt = limit_budget(now, h, iv, tonumber(ARGV[b + 2]))
  limits[h] = { iv = iv, left = left, budget = left, nxt = nxt }
end
local fences = 11 + nq + nh + nl * 3
local expires = now + lease_us
local out = { s(now), s(expires) }
local taken = 0
for p = 0, 3 do
  local want = max - taken
  if want <= 0 then break end
  local cands = {}
  for _, q in ipairs(queues) do
    for _, h in ipairs(handlers) do
      local lim = limits[h]
      local n = want
      if lim then n = math.min(want, lim.left) end
      if n > 0 then
        local key = k_ready(q, h, p)
        local r = redis.call('ZRANGEBYSCORE', key, '-inf', s(now), 'WITHSCORES', 'LIMIT', 0, n)
        for i = 1, #r, 2 do
          cands[#cands + 1] = { tonumber(r[i + 1]), r[i], key, q, h }
        end
      end
    end
  end
  table.sort(cands, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  for _, c in ipairs(cands) do
    if taken >= max then break end
    local lim = limits[c[5]]
    if not lim or lim.left > 0 then
      if lim then lim.left = lim.left - 1 end
      local id, q = c[2], c[4]
      local key = k_job(id)
      local j = redis.call('HMGET', key, 'status', 'attempt')
      redis.call('ZREM', c[3], id)
      redis.call('ZREM', k_idx('s', j[1]), id)
      redis.call('ZADD', k_idx('s', 'running'), 0, id)
      if j[1] == 'scheduled' then redis.call('ZREM', k_sched(q, p), id) end
      count(q, tostring(p), j[1], -1)
      count(q, tostring(p), 'running', 1)
      taken = taken + 1
      redis.call('HSET', key, 'status', 'running', 'attempt', s(tonumber(j[2]) + 1),
        'started', s(now), 'fence', ARGV[fences + taken - 1], 'worker', worker,
        'expires', s(expires), 'lease_ms', lease_ms)
      redis.call('ZADD', K_LEASES, s(expires), id)
      out[#out + 1] = redis.call('HGETALL', key)
    end
  end
end
-- Book the next start of each rate-limited handler that started jobs (as
-- HandlerLimit::book: an interval per start after the later of now and
-- its previous booking).
for h, lim in pairs(limits) do
  local started = lim.budget - lim.left
  if lim.iv > 0 and started > 0 then
    redis.call('HSET', K_LIMITS, h, s(math.max(now, lim.nxt or now) + lim.iv * started))
  end
end
return out
