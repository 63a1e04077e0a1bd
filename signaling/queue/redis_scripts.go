package queue

// The Lua scripts of the Redis store, one per changing call, and the helpers
// they share. The key layout they keep is described in docs/architecture.md
// ("Queue store on Redis").

import "github.com/redis/go-redis/v9"

// Lua helpers shared by the agent scripts. An agent's record (a JSON object
// in the org's agents hash) holds: queues (escaped queue names), cap, active,
// avail, idle (an idleStamp), sk (skills). unready/ready remove/add the
// agent's member in the ready set of each of its queues; the member is
// present exactly when the agent is available and has free capacity.
const luaAgentHelpers = `
local function ready_member(ag, id) return ag.idle .. ':' .. id end
local function unready(qprefix, ag, id)
  local m = ready_member(ag, id)
  for _, q in ipairs(ag.queues) do
    redis.call('ZREM', qprefix .. q .. ':ready', m)
  end
end
local function ready(qprefix, ag, id)
  if not ag.avail or ag.active >= ag.cap then return end
  local m = ready_member(ag, id)
  for _, q in ipairs(ag.queues) do
    redis.call('ZADD', qprefix .. q .. ':ready', 0, m)
  end
end
local function save(key, ag, id)
  redis.call('HSET', key, id, cjson.encode(ag))
end
local function load(key, id)
  local raw = redis.call('HGET', key, id)
  if not raw then return nil end
  local ag = cjson.decode(raw)
  if type(ag.queues) ~= 'table' then ag.queues = {} end
  return ag
end
`

// luaSamples records a sample in a sorted set scored by time. The set is
// trimmed to the retention (older than cut, beyond keep) only once it holds
// 64 more than keep, so that most calls cost one ZADD and one ZCARD; readers
// select by time, so the few extra samples are never seen.
const luaSamples = `
local function record(key, at, member, cut, keep)
  redis.call('ZADD', key, at, member)
  local n = redis.call('ZCARD', key)
  if n > keep + 64 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. cut)
    n = redis.call('ZCARD', key)
    if n > keep then redis.call('ZREMRANGEBYRANK', key, 0, n - keep - 1) end
  end
end
`

// luaAttached keeps a queue's attached set (the members of its wait set
// whose session is not in its detached hash) right when a writer that does
// not keep it (the version before the set existed, during a rolling
// upgrade) has changed the queue. Every script of this version keeps
// |wait| = |attached| + |detached| (the detached hash names only waiting
// customers); a difference is a sign of such a writer, and the assign script
// then rebuilds the set from the wait set, which takes time in the queue's
// length, once.
const luaAttached = `
local function attached_consistent(wait, detached, attached)
  return redis.call('ZCARD', wait) == redis.call('ZCARD', attached) + redis.call('HLEN', detached)
end
local function rebuild_attached(wait, entries, detached, attached)
  redis.call('DEL', attached)
  -- A detached mark of a customer no longer waiting would keep the counts
  -- apart for ever: drop it.
  for _, s in ipairs(redis.call('HKEYS', detached)) do
    if redis.call('HEXISTS', entries, s) == 0 then redis.call('HDEL', detached, s) end
  end
  local batch = {}
  for _, m in ipairs(redis.call('ZRANGE', wait, 0, -1)) do
    if redis.call('HEXISTS', detached, string.sub(m, 37)) == 0 then
      batch[#batch + 1] = 0
      batch[#batch + 1] = m
      if #batch >= 1000 then
        redis.call('ZADD', attached, unpack(batch))
        batch = {}
      end
    end
  end
  if #batch > 0 then redis.call('ZADD', attached, unpack(batch)) end
end
`

// luaEligible mirrors routing.Policy.Eligible for the encoded requirements.
const luaEligible = `
local function eligible(reqs, attrs, sk, waited)
  if type(attrs) ~= 'table' then return true end
  for _, r in ipairs(reqs) do
    local v = attrs[r.a]
    if type(v) == 'string' and v ~= '' then
      local need = 1
      for _, st in ipairs(r.st) do
        if waited < st[1] then break end
        need = st[2]
      end
      if need > 0 then
        local lv = 0
        if type(sk) == 'table' and type(sk[r.s]) == 'table' and type(sk[r.s][v]) == 'number' then
          lv = sk[r.s][v]
        end
        if lv < need then return false end
      end
    end
  end
  return true
end
`

// Scripts. Immutable after creation (go-redis keeps only the SHA cache).
var (
	// KEYS: the subject's key. ARGV: the session expected to hold it (""
	// : nobody), the new holder, its TTL in ms. Returns 1 if taken, 0 if
	// another session holds it.
	holdSubjectScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`)

	// KEYS: wait zset, entries hash, seq counter, detached hash, attached
	// zset. ARGV: session, rank prefix, entry JSON, maxLen. Returns the
	// 1-based position, -1 if already waiting, -2 if full.
	enqueueScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return -1 end
redis.call('HDEL', KEYS[4], ARGV[1])
local maxlen = tonumber(ARGV[4])
if maxlen > 0 and redis.call('ZCARD', KEYS[1]) >= maxlen then return -2 end
local pre = ARGV[2] .. string.format('%012d', redis.call('INCR', KEYS[3]))
local m = pre .. ':' .. ARGV[1]
redis.call('ZADD', KEYS[1], 0, m)
redis.call('ZADD', KEYS[5], 0, m)
redis.call('HSET', KEYS[2], ARGV[1], pre .. ARGV[3])
return redis.call('ZRANK', KEYS[1], m) + 1
`)

	// KEYS: wait zset, entries hash, detached hash, attached zset. ARGV:
	// session, rank prefix, entry JSON. Returns 1, or -1 if already waiting.
	requeueScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return -1 end
redis.call('HDEL', KEYS[3], ARGV[1])
local pre = ARGV[2] .. '000000000000'
redis.call('ZADD', KEYS[1], 0, pre .. ':' .. ARGV[1])
redis.call('ZADD', KEYS[4], 0, pre .. ':' .. ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], pre .. ARGV[3])
return 1
`)

	// KEYS: wait zset, entries hash, detached hash, attached zset. ARGV:
	// session, "1" to remove only a detached customer. Returns 1 if removed.
	removeScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[2], ARGV[1])
if not v then return 0 end
if ARGV[2] == '1' and redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then return 0 end
local m = string.sub(v, 1, 35) .. ':' .. ARGV[1]
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[1], m)
redis.call('ZREM', KEYS[4], m)
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`)

	// KEYS: source wait zset, source entries, destination wait zset,
	// destination entries, destination seq, source detached, destination
	// detached, source attached zset, destination attached zset. ARGV:
	// session, new priority (3 digits, inverted), maxLen. Returns 1 if
	// moved, 0 if not waiting, -1 if already in the destination, -2 if the
	// destination is full.
	moveScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[2], ARGV[1])
if not v then return 0 end
if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 1 then return -1 end
local maxlen = tonumber(ARGV[3])
if maxlen > 0 and redis.call('ZCARD', KEYS[3]) >= maxlen then return -2 end
local det = redis.call('HGET', KEYS[6], ARGV[1])
redis.call('HDEL', KEYS[6], ARGV[1])
if det then redis.call('HSET', KEYS[7], ARGV[1], det) end
local old = string.sub(v, 1, 35) .. ':' .. ARGV[1]
redis.call('ZREM', KEYS[1], old)
redis.call('ZREM', KEYS[8], old)
redis.call('HDEL', KEYS[2], ARGV[1])
local pre = ARGV[2] .. string.sub(v, 4, 23) .. string.format('%012d', redis.call('INCR', KEYS[5]))
redis.call('ZADD', KEYS[3], 0, pre .. ':' .. ARGV[1])
if not det then redis.call('ZADD', KEYS[9], 0, pre .. ':' .. ARGV[1]) end
redis.call('HSET', KEYS[4], ARGV[1], pre .. string.sub(v, 36))
return 1
`)

	// KEYS: agents hash. ARGV: queue key prefix, agent, queues (JSON array
	// of escaped names), capacity, available (1/0), now (idleStamp), skills
	// (JSON object, or ""), node, name.
	setAgentScript = redis.NewScript(luaAgentHelpers + `
local id, now = ARGV[2], ARGV[6]
local avail = ARGV[5] == '1'
local ag = load(KEYS[1], id)
if ag then
  unready(ARGV[1], ag, id)
else
  ag = {active = 0, avail = false, idle = now}
end
ag.queues = cjson.decode(ARGV[3])
if type(ag.queues) ~= 'table' then ag.queues = {} end
ag.cap = tonumber(ARGV[4])
ag.sk = nil
if ARGV[7] ~= '' then ag.sk = cjson.decode(ARGV[7]) end
ag.n, ag.nm = ARGV[8], ARGV[9]
if avail and not ag.avail and ag.active == 0 then ag.idle = now end
ag.avail = avail
save(KEYS[1], ag, id)
ready(ARGV[1], ag, id)
return 1
`)

	// KEYS: agents hash. ARGV: queue key prefix, agent.
	removeAgentScript = redis.NewScript(luaAgentHelpers + `
local ag = load(KEYS[1], ARGV[2])
if not ag then return 0 end
unready(ARGV[1], ag, ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[2])
return 1
`)

	// KEYS: agents hash. ARGV: queue key prefix, agent, now (idleStamp).
	releaseScript = redis.NewScript(luaAgentHelpers + `
local id = ARGV[2]
local ag = load(KEYS[1], id)
if not ag or ag.active <= 0 then return 0 end
unready(ARGV[1], ag, id)
ag.active = ag.active - 1
if ag.active == 0 then ag.idle = ARGV[3] end
save(KEYS[1], ag, id)
ready(ARGV[1], ag, id)
return 1
`)

	// KEYS: wait zset, entries hash, ready zset, agents hash, answered
	// samples, detached hash, attached zset. ARGV: queue key prefix, encoded
	// requirements ("" for none), now (Unix ms), scan limit, sample cutoff
	// (Unix ms), samples kept. Only the attached set is searched, so
	// detached customers cost nothing however many there are. Returns false
	// when no pair is found, else {session, entry, agent, agent's node,
	// agent's name}.
	assignScript = redis.NewScript(luaAgentHelpers + luaSamples + luaEligible + luaAttached + `
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
return {sid, entry, id, ag.n or '', ag.nm or ''}
`)

	// KEYS: entries hash, detached hash, attached zset. ARGV: session,
	// detached since (Unix ms). Returns 1 if the customer is waiting.
	detachScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZREM', KEYS[3], string.sub(v, 1, 35) .. ':' .. ARGV[1])
end
return 1
`)

	// KEYS: entries hash, detached hash, attached zset. ARGV: session,
	// node. Returns 1 if the customer is waiting.
	attachScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], 0, string.sub(v, 1, 35) .. ':' .. ARGV[1])
local e = cjson.decode(string.sub(v, 36))
if ARGV[2] == '' then e.n = nil else e.n = ARGV[2] end
redis.call('HSET', KEYS[1], ARGV[1], string.sub(v, 1, 35) .. cjson.encode(e))
return 1
`)

	// KEYS: samples zset. ARGV: now (Unix ms), member, cutoff, kept.
	recordScript = redis.NewScript(luaSamples + `
record(KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
return 1
`)
)
