-- lib/samples.lua: record, for the scripts that keep samples (assign.lua,
-- record.lua).
--
-- record(key, at, member, cut, keep) adds a sample to a sorted set scored
-- by time. The set is trimmed to the retention (older than cut, beyond
-- keep) only once it holds 64 more than keep, so that most calls cost one
-- ZADD and one ZCARD; readers select by time, so the few extra samples are
-- never seen. No KEYS or ARGV: the caller passes the key in.

local function record(key, at, member, cut, keep)
  redis.call('ZADD', key, at, member)
  local n = redis.call('ZCARD', key)
  if n > keep + 64 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. cut)
    n = redis.call('ZCARD', key)
    if n > keep then redis.call('ZREMRANGEBYRANK', key, 0, n - keep - 1) end
  end
end
