-- lib/attached.lua: attached_consistent and rebuild_attached, for
-- assign.lua.
--
-- They keep a queue's attached set (the members of its wait set whose
-- session is not in its detached hash) right when a writer that does not
-- keep it (the version before the set existed, during a rolling upgrade)
-- has changed the queue. Every script of this version keeps
-- |wait| = |attached| + |detached| (the detached hash names only waiting
-- customers); a difference is a sign of such a writer, and assign.lua then
-- rebuilds the set from the wait set, which takes time in the queue's
-- length, once. No KEYS or ARGV: the caller passes the keys in.

local function attached_consistent(wait, detached, attached)
  return redis.call('ZCARD', wait) == redis.call('ZCARD', attached) + redis.call('HLEN', detached)
end
local function rebuild_attached(wait, entries, detached, attached)
  redis.call('DEL', attached)
  -- A detached mark of a customer no longer waiting would keep the counts
  -- apart for ever: drop it.
  for _, s in ipairs(redis.call('HKEYS', detached)) do
    if redis.call('HEXISTS', entries, s) == 0 then redis.call('HDEL', detached, s) end
  end
  local batch = {}
  for _, m in ipairs(redis.call('ZRANGE', wait, 0, -1)) do
    if redis.call('HEXISTS', detached, string.sub(m, 37)) == 0 then
      batch[#batch + 1] = 0
      batch[#batch + 1] = m
      if #batch >= 1000 then
        redis.call('ZADD', attached, unpack(batch))
        batch = {}
      end
    end
  end
  if #batch > 0 then redis.call('ZADD', attached, unpack(batch)) end
end
