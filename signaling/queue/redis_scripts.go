package queue

// The Lua scripts of the Redis store, one per changing call. Each script's
// body is a file under lua/ whose header names its KEYS and ARGV; the
// helpers some of them share are libraries under lua/lib/, placed before the
// body. The files are embedded in the binary and joined here, once, when the
// package is initialized; the scripts are immutable after that (go-redis
// keeps only the SHA cache). The key layout they keep is described in
// docs/architecture.md ("Queue store on Redis").
//
// `make lint` checks every file with luac5.1 and luacheck (lua/.luacheckrc);
// redis_scripts_test.go loads every script into a real Redis and checks that
// no file is left unused.

import (
	"embed"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

//go:embed lua/*.lua lua/lib/*.lua
var luaFiles embed.FS

// luaScript is a Redis script and the files under lua/ it was made of.
type luaScript struct {
	*redis.Script
	files []string
}

// newLuaScript joins files (paths under lua/), in order, into one script.
// A missing file is a mistake in this package: it panics, at init.
func newLuaScript(files ...string) *luaScript {
	var b strings.Builder
	for _, f := range files {
		src, err := luaFiles.ReadFile("lua/" + f)
		if err != nil {
			panic(fmt.Sprintf("queue: lua script: %v", err))
		}
		b.Write(src)
		if len(src) > 0 && src[len(src)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return &luaScript{Script: redis.NewScript(b.String()), files: files}
}

// The libraries, by what they define.
const (
	luaAgent    = "lib/agent.lua"    // an agent's record and its ready members
	luaSamples  = "lib/samples.lua"  // record: a sample, trimmed lazily
	luaEligible = "lib/eligible.lua" // eligible: routing.Policy.Eligible
	luaAttached = "lib/attached.lua" // a queue's attached set, checked and rebuilt
)

// Scripts, named after the call that runs them.
var (
	holdSubjectScript = newLuaScript("hold_subject.lua")
	enqueueScript     = newLuaScript("enqueue.lua")
	requeueScript     = newLuaScript("requeue.lua")
	removeScript      = newLuaScript("remove.lua")
	moveScript        = newLuaScript("move.lua")
	setAgentScript    = newLuaScript(luaAgent, "set_agent.lua")
	removeAgentScript = newLuaScript(luaAgent, "remove_agent.lua")
	releaseScript     = newLuaScript(luaAgent, "release.lua")
	assignScript      = newLuaScript(luaAgent, luaSamples, luaEligible, luaAttached, "assign.lua")
	detachScript      = newLuaScript("detach.lua")
	attachScript      = newLuaScript("attach.lua")
	recordScript      = newLuaScript(luaSamples, "record.lua")
)
