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
  local refused = refuse_holder(id, ARGV[b + 1])
  if refused then
    out[#out + 1] = refused
  else
    local key = k_job(id)
    local j = redis.call('HMGET', key, 'queue', 'prio', 'attempt', 'started', 'worker')
    push_attempt(id, '{"attempt":' .. j[3] .. ',"at":' .. j[4] .. ',"host":' .. cjson.encode(j[5])
      .. ',' .. ARGV[b + 2] .. '}')
    clear_lease(id)
    set_status(id, j[1], j[2], 'running', 'succeeded')
    redis.call('HSET', key, 'finished', s(now), 'result', ARGV[b + 3])
    if ARGV[b + 4] == '1' then redis.call('HSET', key, 'log', ARGV[b + 5]) end
    redis.call('ZADD', K_FINISHED, s(now), id)
    out[#out + 1] = 'ok'
    done = done + 1
  end
end
if done > 0 then signal('e') end
return out
