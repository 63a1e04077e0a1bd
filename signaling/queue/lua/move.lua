-- move.lua: Redis.Move. Takes a waiting customer out of one queue and puts
-- it in another of the same org, keeping its Since and its detached mark,
-- with a new priority.
--
-- KEYS[1]  source wait zset           (hc:{org}:q:<from>:wait)
-- KEYS[2]  source entries hash        (...:entries)
-- KEYS[3]  destination wait zset      (hc:{org}:q:<to>:wait)
-- KEYS[4]  destination entries hash
-- KEYS[5]  destination seq counter
-- KEYS[6]  source detached hash
-- KEYS[7]  destination detached hash
-- KEYS[8]  source attached zset
-- KEYS[9]  destination attached zset
-- ARGV[1]  session
-- ARGV[2]  new priority (3 digits, 999 minus the priority)
-- ARGV[3]  maxLen of the destination (0: no limit)
--
-- Returns 1 if moved, 0 if not waiting, -1 if already in the destination,
-- -2 if the destination is full.

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
