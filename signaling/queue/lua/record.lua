-- record.lua: Redis.RecordHandled. Records one sample. Runs after
-- lib/samples.lua.
--
-- KEYS[1]  samples zset    (hc:{org}:q:<queue>:handled)
-- ARGV[1]  now (Unix ms)
-- ARGV[2]  member ("<at ms>:<duration ms>:<tag>")
-- ARGV[3]  cutoff (Unix ms): older samples may be trimmed
-- ARGV[4]  samples kept
--
-- Returns 1.
--
-- luacheck: read globals record

record(KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
return 1
