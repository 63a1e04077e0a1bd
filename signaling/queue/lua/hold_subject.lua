-- hold_subject.lua: Redis.HoldSubject. Makes a session the holder of a
-- token subject if the expected session holds it now.
--
-- KEYS[1]  the subject's key (hc:{org}:sub:<subject>)
-- ARGV[1]  the session expected to hold it ("" : nobody)
-- ARGV[2]  the new holder
-- ARGV[3]  the hold's TTL in ms
--
-- Returns 1 if taken, 0 if another session holds it.

local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
