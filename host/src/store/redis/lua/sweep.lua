-- One bounded step of the retention sweep: finished jobs past retention,
-- idempotency keys past their TTL, schedule ticks past their retention,
-- succeeded and cancelled chains and finished batches without dead jobs
-- past the jobs' retention.
-- ARGV: prefix, time, job retention (µs), tick retention (µs), step.
-- Answers the four counts; the host calls again while any is a full step.
local now = now_micros()
local step = tonumber(ARGV[5])
local jobs = redis.call('ZRANGEBYSCORE', K_FINISHED, '-inf', s(now - tonumber(ARGV[3])), 'LIMIT', 0, step)
for _, id in ipairs(jobs) do remove_job(id) end
local keys = redis.call('ZRANGEBYSCORE', K_IDEM_EXP, '-inf', s(now), 'LIMIT', 0, step)
for _, k in ipairs(keys) do
  redis.call('HDEL', K_IDEM, k)
  redis.call('ZREM', K_IDEM_EXP, k)
end
local K_TICKS, K_TICKS_AT = P .. 'ticks', P .. 'ticks_at'
local ticks = redis.call('ZRANGEBYSCORE', K_TICKS_AT, '-inf', s(now - tonumber(ARGV[4])), 'LIMIT', 0, step)
for _, t in ipairs(ticks) do
  redis.call('HDEL', K_TICKS, t)
  redis.call('ZREM', K_TICKS_AT, t)
end
local chains = redis.call('ZRANGEBYSCORE', K_CHAINS_DONE, '-inf', s(now - tonumber(ARGV[3])), 'LIMIT', 0, step)
for _, c in ipairs(chains) do
  redis.call('DEL', k_chain(c))
  redis.call('ZREM', K_CHAINS_DONE, c)
end
local batches = redis.call('ZRANGEBYSCORE', K_BATCHES_DONE, '-inf', s(now - tonumber(ARGV[3])), 'LIMIT', 0, step)
for _, b in ipairs(batches) do
  redis.call('DEL', k_batch(b), k_batch_open(b))
  redis.call('ZREM', K_BATCHES_DONE, b)
end
return { #jobs, #keys, #ticks, #chains, #batches }
