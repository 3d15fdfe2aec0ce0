-- Records the success of many runs in one call (the host gathers the
-- completions that arrive while the previous call runs). Each is refused
-- on its own when its (job, fence) is not the current lease.
-- ARGV: prefix, time, count, then per run: id, fence, attempt json tail
-- (the raw JSON after "host"), result json, has log (0/1), log.
-- Answers 'ok', 'nf' or 'lost' per run.
local now = now_micros()
local n = tonumber(ARGV[3])
local out = {}
local done = 0
for i = 0, n - 1 do
  local b = 4 + i * 6
  local id = ARGV[b]
  local key = k_job(id)
  -- One read and one write of the hash per run: this is the hot path.
  local j = redis.call('HMGET', key, 'status', 'fence', 'queue', 'prio', 'attempt', 'started',
    'worker', 'hist', 'chain', 'batch')
  if not j[1] then
    out[#out + 1] = 'nf'
  elseif j[1] ~= 'running' or j[2] ~= ARGV[b + 1] then
    out[#out + 1] = 'lost'
  else
    local entry = '{"attempt":' .. j[5] .. ',"at":' .. j[6] .. ',"host":' .. cjson.encode(j[7])
      .. ',' .. ARGV[b + 2] .. '}'
    local hist = j[8]
    if hist == '[]' then
      hist = '[' .. entry .. ']'
    else
      hist = string.sub(hist, 1, -2) .. ',' .. entry .. ']'
    end
    redis.call('ZREM', K_LEASES, id)
    redis.call('ZREM', k_idx('s', 'running'), id)
    redis.call('ZADD', k_idx('s', 'succeeded'), 0, id)
    count(j[3], j[4], 'running', -1)
    count(j[3], j[4], 'succeeded', 1)
    if ARGV[b + 4] == '1' then
      redis.call('HSET', key, 'status', 'succeeded', 'fence', '', 'worker', '', 'expires', '',
        'finished', s(now), 'result', ARGV[b + 3], 'hist', hist, 'log', ARGV[b + 5])
    else
      redis.call('HSET', key, 'status', 'succeeded', 'fence', '', 'worker', '', 'expires', '',
        'finished', s(now), 'result', ARGV[b + 3], 'hist', hist)
    end
    redis.call('ZADD', K_FINISHED, s(now), id)
    -- A chain step enqueues its successor in the same call.
    if j[9] and j[9] ~= '' then chain_job_ended(now, id, 'succeeded', ARGV[b + 3]) end
    -- A batch's job counts, and fires the callbacks it makes due.
    if j[10] and j[10] ~= '' then batch_job_ended(now, id, 'succeeded', j[10]) end
    out[#out + 1] = 'ok'
    done = done + 1
  end
end
if done > 0 then signal('e') end
return out
