-- Reap expired leases. ARGV: prefix, time, limit.
return reap(now_micros(), tonumber(ARGV[3]))
