-- set_agent.lua: Redis.SetAgent. Records an agent's presence, keeping its
-- calls in progress. Runs after lib/agent.lua.
--
-- KEYS[1]  agents hash     (hc:{org}:agents)
-- ARGV[1]  queue key prefix (hc:{org}:q:)
-- ARGV[2]  agent session
-- ARGV[3]  queues (JSON array of escaped names)
-- ARGV[4]  capacity (at least 1)
-- ARGV[5]  available ("1" or "0")
-- ARGV[6]  now (idleStamp)
-- ARGV[7]  skills (JSON object, or "")
-- ARGV[8]  node
-- ARGV[9]  name
-- ARGV[10] subject
--
-- Returns 1.
--
-- luacheck: read globals load save ready unready

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
ag.n, ag.nm, ag.sb = ARGV[8], ARGV[9], ARGV[10]
if avail and not ag.avail and ag.active == 0 then ag.idle = now end
ag.avail = avail
save(KEYS[1], ag, id)
ready(ARGV[1], ag, id)
return 1
