-- release.lua: Redis.Release. Ends one of an agent's calls, freeing
-- capacity; an agent left with no call counts as idle from now. Runs after
-- lib/agent.lua.
--
-- KEYS[1]  agents hash     (hc:{org}:agents)
-- ARGV[1]  queue key prefix (hc:{org}:q:)
-- ARGV[2]  agent session
-- ARGV[3]  now (idleStamp)
--
-- Returns 1 if a call was released, 0 if the agent had none (or is unknown).
--
-- luacheck: read globals load save ready unready

local id = ARGV[2]
local ag = load(KEYS[1], id)
if not ag or ag.active <= 0 then return 0 end
unready(ARGV[1], ag, id)
ag.active = ag.active - 1
if ag.active == 0 then ag.idle = ARGV[3] end
save(KEYS[1], ag, id)
ready(ARGV[1], ag, id)
return 1
