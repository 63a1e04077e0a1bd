-- luacheck's settings for the Redis store's scripts (make lint runs
-- `luacheck --config signaling/queue/lua/.luacheckrc` on them).
--
-- Redis runs Lua 5.1 with these libraries and globals of its own. A script
-- may not create globals. os is left out: the scripts never read a clock
-- (times come in ARGV, from the store's clock).
std = "lua51"
read_globals = {
  "redis", "KEYS", "ARGV",
  "cjson", "cmsgpack", "bit", "struct",
}
not_globals = {"os", "io", "dofile", "loadfile", "require", "module", "package"}
allow_defined_top = false

-- A library under lib/ defines local functions for the scripts it is placed
-- before: unused in its own file (warning 211) is what it is for. A script
-- names the library functions it calls in a "luacheck: read globals" line.
files["lib/*.lua"] = {ignore = {"211"}}
