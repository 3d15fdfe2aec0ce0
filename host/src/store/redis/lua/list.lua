-- A page of jobs, newest first (ids sort by creation), from the smallest
-- index that covers the filters, merged when a status spans two stored
-- states. Scans at most `budget` ids a call; a page cut short by the budget
-- still carries a cursor, so a sparse filter never blocks Redis.
-- ARGV: prefix, time, status, queue, handler, schedule ('' = any), after
-- ('' = from the newest), limit, budget.
-- Answers: now, next cursor ('' = last page), job hashes...
local now = now_micros()
local status, queue, handler, sched = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local after, limit, budget = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])

local options = {}
if status == 'pending' then
  options[#options + 1] = { k_idx('s', 'pending'), k_idx('s', 'scheduled') }
elseif status ~= '' then
  options[#options + 1] = { k_idx('s', status) }
end
if queue ~= '' then options[#options + 1] = { k_idx('q', queue) } end
if handler ~= '' then options[#options + 1] = { k_idx('h', handler) } end
if sched ~= '' then options[#options + 1] = { k_idx('sch', sched) } end
if #options == 0 then options[1] = { K_ALL } end
local sources, smallest = nil, nil
for _, keys in ipairs(options) do
  local n = 0
  for _, k in ipairs(keys) do n = n + redis.call('ZCARD', k) end
  if not smallest or n < smallest then sources, smallest = keys, n end
end

local function matches(id)
  local j = redis.call('HMGET', k_job(id), 'status', 'queue', 'handler', 'sched', 'run_at')
  if not j[1] then return false end
  local st = j[1]
  if st == 'scheduled' and tonumber(j[5]) <= now then st = 'pending' end
  return (status == '' or st == status) and (queue == '' or j[2] == queue)
    and (handler == '' or j[3] == handler) and (sched == '' or j[4] == sched)
end

local CHUNK = 256
local bufs, pos, cursors, done = {}, {}, {}, {}
for i, k in ipairs(sources) do
  bufs[i], pos[i], done[i] = {}, 1, false
  if after == '' then cursors[i] = '+' else cursors[i] = '(' .. after end
end
local function head(i)
  if pos[i] > #bufs[i] then
    if done[i] then return nil end
    bufs[i] = redis.call('ZREVRANGEBYLEX', sources[i], cursors[i], '-', 'LIMIT', 0, CHUNK)
    pos[i] = 1
    if #bufs[i] < CHUNK then done[i] = true end
    if #bufs[i] == 0 then return nil end
    cursors[i] = '(' .. bufs[i][#bufs[i]]
  end
  return bufs[i][pos[i]]
end

local found, scanned, last = {}, 0, nil
while #found <= limit and scanned < budget do
  local best, bi = nil, nil
  for i = 1, #sources do
    local h = head(i)
    if h and (not best or h > best) then best, bi = h, i end
  end
  if not best then break end
  pos[bi] = pos[bi] + 1
  scanned = scanned + 1
  last = best
  if matches(best) then found[#found + 1] = best end
end

local out = { s(now), '' }
if #found > limit then
  out[2] = found[limit]
  found[limit + 1] = nil
elseif scanned >= budget and last then
  out[2] = last
end
for _, id in ipairs(found) do out[#out + 1] = redis.call('HGETALL', k_job(id)) end
return out
