-- Chains. ARGV: prefix, time, mode, ...
--   create id steps-json -> {'ok'}: the chain, and its first step enqueued
--   get id -> {} when missing, else {status, steps, created, finished,
--              then each step's job status ('' before it was enqueued)}
local now = now_micros()
local mode, id = ARGV[3], ARGV[4]

if mode == 'create' then
  local steps = cjson.decode(ARGV[5])
  redis.call('HSET', k_chain(id), 'status', 'running', 'steps', ARGV[5], 'created', s(now),
    'finished', '')
  add_chain_step(now, id, steps, 0, steps[1].payload)
  return { 'ok' }
end

-- get
local c = redis.call('HMGET', k_chain(id), 'status', 'steps', 'created', 'finished')
if not c[1] then return {} end
local out = { c[1], c[2], c[3], c[4] }
for _, st in ipairs(cjson.decode(c[2])) do
  out[#out + 1] = redis.call('HGET', k_job(st.job), 'status') or ''
end
return out
