-- detach.lua: Redis.Detach. Marks a waiting customer as disconnected: it
-- keeps its place but leaves the attached set. A customer already detached
-- keeps its first time.
--
-- KEYS[1]  entries hash    (hc:{org}:q:<queue>:entries)
-- KEYS[2]  detached hash   (...:detached)
-- KEYS[3]  attached zset   (...:attached)
-- ARGV[1]  session
-- ARGV[2]  detached since (Unix ms)
--
-- Returns 1 if the customer is waiting, else 0.

local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZREM', KEYS[3], string.sub(v, 1, 35) .. ':' .. ARGV[1])
end
return 1
