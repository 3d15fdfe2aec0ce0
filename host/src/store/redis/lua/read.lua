-- Reads that need the store's time. ARGV: prefix, time, mode, ...
--   get id:          now, job hash (empty when missing)
--   key scoped:      the job a live idempotency key is bound to, or ''
--   counts:          now, count cells (field, n)..., then due scheduled
--                    jobs per queue and priority (queue, p, n)...
--   next #q q... #h h...: earliest run-at of a waiting job, earliest
--                    lease expiry, now ('' for none)
--   active name:     the latest tick's job while unfinished, or ''
--   limits #l (handler, interval µs, concurrency)...: now, then per limit
--                    running, booked next start ('' for none), held (0/1)
local now = now_micros()
local mode = ARGV[3]
if mode == 'get' then
  return { s(now), redis.call('HGETALL', k_job(ARGV[4])) }
elseif mode == 'key' then
  local bound = redis.call('HGET', K_IDEM, ARGV[4])
  if bound then
    local sep = string.find(bound, '|', 1, true)
    if tonumber(string.sub(bound, sep + 1)) > now then return string.sub(bound, 1, sep - 1) end
  end
  return ''
elseif mode == 'counts' then
  local due = {}
  for _, q in ipairs(redis.call('SMEMBERS', K_QUEUES)) do
    for p = 0, 3 do
      local n = redis.call('ZCOUNT', k_sched(q, p), '-inf', s(now))
      if n > 0 then
        due[#due + 1] = q
        due[#due + 1] = tostring(p)
        due[#due + 1] = n
      end
    end
  end
  return { s(now), redis.call('HGETALL', K_COUNTS), due }
elseif mode == 'next' then
  local nq = tonumber(ARGV[4])
  local nh = tonumber(ARGV[5 + nq])
  local best = nil
  for i = 1, nq do
    local q = ARGV[4 + i]
    if redis.call('HGET', K_PAUSED, q) ~= '1' then
      for k = 1, nh do
        local h = ARGV[5 + nq + k]
        for p = 0, 3 do
          local r = redis.call('ZRANGE', k_ready(q, h, p), 0, 0, 'WITHSCORES')
          if r[2] and (not best or tonumber(r[2]) < best) then best = tonumber(r[2]) end
        end
      end
    end
  end
  local lease = redis.call('ZRANGE', K_LEASES, 0, 0, 'WITHSCORES')
  local run_at = ''
  if best then run_at = s(best) end
  return { run_at, lease[2] or '', s(now) }
elseif mode == 'active' then
  local latest = redis.call('HGET', P .. 'sched_latest', ARGV[4])
  if not latest then return '' end
  local id = string.sub(latest, string.find(latest, '|', 1, true) + 1)
  local st = redis.call('HGET', k_job(id), 'status')
  if st == 'scheduled' or st == 'pending' or st == 'running' or st == 'retrying' then return id end
  return ''
elseif mode == 'limits' then
  local out = { s(now) }
  for i = 0, tonumber(ARGV[4]) - 1 do
    local b = 5 + i * 3
    local h = ARGV[b]
    local running, nxt = limit_standing(h)
    local left = limit_budget(now, h, tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]))
    out[#out + 1] = running
    out[#out + 1] = nxt and s(nxt) or ''
    out[#out + 1] = left == 0 and 1 or 0
  end
  return out
end
return redis.error_reply('unknown read ' .. mode)
