-- lib/agent.lua: helpers for the scripts that read or change an agent's
-- record; placed before the body of set_agent.lua, remove_agent.lua,
-- release.lua and assign.lua.
--
-- An agent's record is a JSON object in the org's agents hash holding:
-- queues (escaped queue names), cap, active, avail, idle (an idleStamp), sk
-- (skills), n (node) and nm (name). unready and ready remove and add the
-- agent's member "<idle>:<agent>" in the ready set of each of its queues
-- (<queue key prefix><queue>:ready); the member is present exactly when the
-- agent is available and has free capacity.
--
-- Defines: ready_member, unready, ready, save, load. No KEYS or ARGV: the
-- callers pass the keys in.

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
