-- Plugin releases deployed through the store: one list per plugin name of
-- '<digest> <deployed µs>' entries, the release in service last; a set of
-- the names; a generation counter every change bumps. The components
-- themselves are plain keys by digest, written before their release. A
-- change signals like a write, so following hosts look at once.
-- ARGV: prefix, time, mode, ...
--   put name digest -> {digest, deployed µs, changed 0/1}
--   rollback name   -> {digest, deployed µs} | {'none'} | {'only', digest}
--   releases        -> {generation, name, digest, deployed µs, ...}
local mode = ARGV[3]
local K_GEN, K_NAMES = P .. 'plugin_gen', P .. 'plugin_names'
local function k_rel(name) return P .. 'plugin_rel:' .. part(name) end
local function top(name)
  local entry = redis.call('LINDEX', k_rel(name), -1)
  if not entry then return nil, nil end
  local sep = string.find(entry, ' ', 1, true)
  return string.sub(entry, 1, sep - 1), string.sub(entry, sep + 1)
end
if mode == 'put' then
  local name, digest = ARGV[4], ARGV[5]
  local d, at = top(name)
  if d == digest then return {d, at, 0} end
  local now = s(now_micros())
  redis.call('RPUSH', k_rel(name), digest .. ' ' .. now)
  redis.call('SADD', K_NAMES, name)
  redis.call('INCR', K_GEN)
  signal('w')
  return {digest, now, 1}
elseif mode == 'rollback' then
  local name = ARGV[4]
  local n = redis.call('LLEN', k_rel(name))
  if n == 0 then return {'none'} end
  if n == 1 then
    local d = top(name)
    return {'only', d}
  end
  redis.call('RPOP', k_rel(name))
  redis.call('INCR', K_GEN)
  signal('w')
  local d, at = top(name)
  return {d, at}
elseif mode == 'releases' then
  local out = {redis.call('GET', K_GEN) or '0'}
  for _, name in ipairs(redis.call('SMEMBERS', K_NAMES)) do
    local d, at = top(name)
    if d then
      table.insert(out, name)
      table.insert(out, d)
      table.insert(out, at)
    end
  end
  return out
end
return redis.error_reply('unknown plugin action ' .. mode)
