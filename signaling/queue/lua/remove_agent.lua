-- remove_agent.lua: Redis.RemoveAgent. Forgets an agent. Runs after
-- lib/agent.lua.
--
-- KEYS[1]  agents hash     (hc:{org}:agents)
-- ARGV[1]  queue key prefix (hc:{org}:q:)
-- ARGV[2]  agent session
--
-- Returns 1 if the agent was known, else 0.
--
-- luacheck: read globals load unready

local ag = load(KEYS[1], ARGV[2])
if not ag then return 0 end
unready(ARGV[1], ag, ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[2])
return 1
