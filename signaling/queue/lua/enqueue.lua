-- enqueue.lua: Redis.Enqueue. Adds a customer at the back of its queue.
--
-- KEYS[1]  wait zset       (hc:{org}:q:<queue>:wait)
-- KEYS[2]  entries hash    (...:entries)
-- KEYS[3]  seq counter     (...:seq)
-- KEYS[4]  detached hash   (...:detached)
-- KEYS[5]  attached zset   (...:attached)
-- ARGV[1]  session
-- ARGV[2]  rank prefix: priority and Since (rankPrefix, 23 bytes)
-- ARGV[3]  entry JSON (storedEntry)
-- ARGV[4]  maxLen (0: no limit)
--
-- Returns the 1-based position, -1 if already waiting, -2 if full.

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
