-- Reap expired leases, then lease up to `max` due jobs: strict priority,
-- then run-at, then id, over every (queue, handler) pair asked for, so a
-- host that serves only some handlers never scans past other handlers' jobs.
-- ARGV: prefix, time, worker, lease (µs), lease (ms), max, reap limit,
-- #queues, queues..., #handlers, handlers..., then `max` fences.
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
local fences = 10 + nq + nh
local expires = now + lease_us
local out = { s(now), s(expires) }
local taken = 0
for p = 0, 3 do
  local want = max - taken
  if want <= 0 then break end
  local cands = {}
  for _, q in ipairs(queues) do
    for _, h in ipairs(handlers) do
      local key = k_ready(q, h, p)
      local r = redis.call('ZRANGEBYSCORE', key, '-inf', s(now), 'WITHSCORES', 'LIMIT', 0, want)
      for i = 1, #r, 2 do
        cands[#cands + 1] = { tonumber(r[i + 1]), r[i], key, q }
      end
    end
  end
  table.sort(cands, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  for i = 1, math.min(want, #cands) do
    local c = cands[i]
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
return out
