-- assign.lua: Redis.Assign. Takes the first attached customer of a queue
-- for whom a ready agent is eligible, gives it to the eligible agent idle
-- longest, and records the customer's wait. Only the attached set is
-- searched, so detached customers cost nothing however many there are.
-- Runs after lib/agent.lua, lib/samples.lua, lib/eligible.lua and
-- lib/attached.lua, in that order.
--
-- KEYS[1]  wait zset              (hc:{org}:q:<queue>:wait)
-- KEYS[2]  entries hash           (...:entries)
-- KEYS[3]  ready zset             (...:ready)
-- KEYS[4]  agents hash            (hc:{org}:agents)
-- KEYS[5]  answered samples zset  (...:answered)
-- KEYS[6]  detached hash          (...:detached)
-- KEYS[7]  attached zset          (...:attached)
-- ARGV[1]  queue key prefix (hc:{org}:q:)
-- ARGV[2]  encoded requirements (routing.Policy.Encoded; "" for none)
-- ARGV[3]  now (Unix ms)
-- ARGV[4]  scan limit (queue.ScanLimit)
-- ARGV[5]  sample cutoff (Unix ms)
-- ARGV[6]  samples kept
--
-- Returns false when no pair is found, else {session, entry, agent,
-- agent's node, agent's name, agent's subject}; an error reply if the store
-- is corrupt.
--
-- luacheck: read globals load save ready unready record eligible attached_consistent rebuild_attached

local now = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
if not attached_consistent(KEYS[1], KEYS[6], KEYS[7]) then rebuild_attached(KEYS[1], KEYS[2], KEYS[6], KEYS[7]) end
-- stale is set when the attached set names a customer that is not waiting
-- and attached under that member (only a writer that does not keep the set,
-- an older version, leaves one): the set is then rebuilt and searched again.
local stale = false
local function candidate(m)
  local s = string.sub(m, 37)
  local v = redis.call('HGET', KEYS[2], s)
  if v and string.sub(v, 1, 35) == string.sub(m, 1, 35) and redis.call('HEXISTS', KEYS[6], s) == 0 then
    return s, v
  end
  stale = true
  return nil
end
local members, reqs
local agents = {}
-- agent(i) is the i-th ready agent's {id, record}, decoded when first
-- needed: usually the first ready agent takes the first customer.
local function agent(i)
  if not agents[i] then
    local aid = string.sub(members[i], 22)
    local rec = load(KEYS[4], aid)
    if not rec then
      return nil, redis.error_reply('queue store corrupt: ready agent ' .. aid .. ' has no record')
    end
    agents[i] = {aid, rec}
  end
  return agents[i]
end
local function search()
  if not reqs then
    local first = redis.call('ZRANGE', KEYS[7], 0, 0)
    if #first == 0 then return nil end
    local s, v = candidate(first[1])
    if not s then return nil end
    local a, err = agent(1)
    if not a then return nil, err end
    return s, v, a
  end
  -- Attached customers in queue order, in growing batches: the first
  -- usually matches, and at most limit are looked at.
  local from, size = 0, 16
  while from < limit do
    local batch = redis.call('ZRANGE', KEYS[7], from, math.min(from + size, limit) - 1)
    if #batch == 0 then return nil end
    for _, m in ipairs(batch) do
      local s, v = candidate(m)
      if not s then return nil end
      local e = cjson.decode(string.sub(v, 36))
      local waited = math.max(now - (tonumber(e.ms) or now), 0)
      for i = 1, #members do
        local a, err = agent(i)
        if not a then return nil, err end
        if eligible(reqs, e.attrs, a[2].sk, waited) then return s, v, a end
      end
    end
    from = from + #batch
    size = size * 4
  end
  return nil
end
if ARGV[2] == '' then
  members = redis.call('ZRANGE', KEYS[3], 0, 0)
else
  members = redis.call('ZRANGE', KEYS[3], 0, -1)
  reqs = cjson.decode(ARGV[2])
end
if #members == 0 then return false end
local sid, entry, a = search()
if stale then
  rebuild_attached(KEYS[1], KEYS[2], KEYS[6], KEYS[7])
  stale = false
  sid, entry, a = search()
  if stale then
    return redis.error_reply('queue store corrupt: an attached customer has no entry')
  end
end
if not sid then
  if entry then return entry end -- an error reply
  return false
end
local id, ag = a[1], a[2]
redis.call('ZREM', KEYS[1], string.sub(entry, 1, 35) .. ':' .. sid)
redis.call('ZREM', KEYS[7], string.sub(entry, 1, 35) .. ':' .. sid)
redis.call('HDEL', KEYS[2], sid)
unready(ARGV[1], ag, id)
ag.active = ag.active + 1
save(KEYS[4], ag, id)
ready(ARGV[1], ag, id)
-- Since, in ms, from the rank prefix (an idleStamp: nanoseconds + 2^63).
local since = math.floor((tonumber(string.sub(entry, 4, 23)) - 9223372036854775808) / 1e6 + 0.5)
record(KEYS[5], now, now .. ':' .. math.max(now - since, 0) .. ':' .. sid, tonumber(ARGV[5]), tonumber(ARGV[6]))
return {sid, entry, id, ag.n or '', ag.nm or '', ag.sb or ''}
