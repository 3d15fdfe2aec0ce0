-- Enqueue a batch, all or nothing (validated before the call).
-- ARGV: prefix, time, idempotency ttl (µs), count, then 12 fields a job.
local now = now_micros()
local ttl = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local out = {}
local made = 0
for i = 0, n - 1 do
  local id, created = enqueue_one(now, ttl, 5 + i * 12)
  out[#out + 1] = id
  out[#out + 1] = created
  made = made + created
end
if made > 0 then signal('w') end
return out
