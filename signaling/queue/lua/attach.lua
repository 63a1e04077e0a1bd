-- attach.lua: Redis.Attach. Marks a waiting customer as connected through
-- a node: no longer detached, back in the attached set, its entry naming
-- the node.
--
-- KEYS[1]  entries hash    (hc:{org}:q:<queue>:entries)
-- KEYS[2]  detached hash   (...:detached)
-- KEYS[3]  attached zset   (...:attached)
-- ARGV[1]  session
-- ARGV[2]  node ("" on a single node)
--
-- Returns 1 if the customer is waiting, else 0.

local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], 0, string.sub(v, 1, 35) .. ':' .. ARGV[1])
local e = cjson.decode(string.sub(v, 36))
if ARGV[2] == '' then e.n = nil else e.n = ARGV[2] end
redis.call('HSET', KEYS[1], ARGV[1], string.sub(v, 1, 35) .. cjson.encode(e))
return 1
