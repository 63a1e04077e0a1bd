-- requeue.lua: Redis.Requeue. Puts an assigned customer back at its old
-- place: its rank prefix with sequence 0, ahead of all who joined later.
--
-- KEYS[1]  wait zset       (hc:{org}:q:<queue>:wait)
-- KEYS[2]  entries hash    (...:entries)
-- KEYS[3]  detached hash   (...:detached)
-- KEYS[4]  attached zset   (...:attached)
-- ARGV[1]  session
-- ARGV[2]  rank prefix: priority and Since (rankPrefix, 23 bytes)
-- ARGV[3]  entry JSON (storedEntry)
--
-- Returns 1, or -1 if already waiting.

if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return -1 end
redis.call('HDEL', KEYS[3], ARGV[1])
local pre = ARGV[2] .. '000000000000'
redis.call('ZADD', KEYS[1], 0, pre .. ':' .. ARGV[1])
redis.call('ZADD', KEYS[4], 0, pre .. ':' .. ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], pre .. ARGV[3])
return 1
