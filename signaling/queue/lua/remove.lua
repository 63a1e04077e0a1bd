-- remove.lua: Redis.Remove and Redis.RemoveDetached. Takes a waiting
-- customer out of its queue.
--
-- KEYS[1]  wait zset       (hc:{org}:q:<queue>:wait)
-- KEYS[2]  entries hash    (...:entries)
-- KEYS[3]  detached hash   (...:detached)
-- KEYS[4]  attached zset   (...:attached)
-- ARGV[1]  session
-- ARGV[2]  "1" to remove only a detached customer, else "0"
--
-- Returns 1 if removed, else 0.

local v = redis.call('HGET', KEYS[2], ARGV[1])
if not v then return 0 end
if ARGV[2] == '1' and redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then return 0 end
local m = string.sub(v, 1, 35) .. ':' .. ARGV[1]
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[1], m)
redis.call('ZREM', KEYS[4], m)
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
