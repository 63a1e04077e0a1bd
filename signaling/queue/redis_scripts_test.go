package queue

// Checks of the Lua files under lua/ that hold without the Lua linter: each
// script loads into a real Redis (so a syntax error fails the tests), no
// file is left unused, and each script's header names the KEYS and ARGV it
// reads.

import (
	"context"
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/helpcaster/helpcaster/internal/redistest"
)

// scripts is every script of the store, by variable name. A new script
// belongs here: TestScriptFiles reports the file of one left out as unused.
func scripts() map[string]*luaScript {
	return map[string]*luaScript{
		"holdSubjectScript": holdSubjectScript,
		"enqueueScript":     enqueueScript,
		"requeueScript":     requeueScript,
		"removeScript":      removeScript,
		"moveScript":        moveScript,
		"setAgentScript":    setAgentScript,
		"removeAgentScript": removeAgentScript,
		"releaseScript":     releaseScript,
		"assignScript":      assignScript,
		"detachScript":      detachScript,
		"attachScript":      attachScript,
		"recordScript":      recordScript,
	}
}

// SCRIPT LOAD compiles a script without running it: a syntax error in any
// file, or in how the files are joined, fails here.
func TestScriptsLoad(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	for _, name := range slices.Sorted(maps.Keys(scripts())) {
		s := scripts()[name]
		sha, err := s.Load(ctx, c).Result()
		if err != nil {
			t.Errorf("%s (%s): SCRIPT LOAD: %v", name, strings.Join(s.files, " + "), err)
			continue
		}
		if sha != s.Hash() {
			t.Errorf("%s: SCRIPT LOAD gave SHA %s, the script's hash is %s", name, sha, s.Hash())
		}
	}
}

// embeddedLua lists the files under lua/, as paths under lua/.
func embeddedLua(t *testing.T) []string {
	t.Helper()
	var files []string
	err := fs.WalkDir(luaFiles, "lua", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, strings.TrimPrefix(path, "lua/"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no embedded lua files")
	}
	return files
}

// Every embedded file is part of some script; every script is libraries
// (lib/) followed by one body of its own.
func TestScriptFiles(t *testing.T) {
	used := make(map[string]bool)
	bodyOf := make(map[string]string) // body file -> script
	for name, s := range scripts() {
		if len(s.files) == 0 {
			t.Errorf("%s is made of no file", name)
			continue
		}
		for i, f := range s.files {
			used[f] = true
			if lib := strings.HasPrefix(f, "lib/"); lib != (i < len(s.files)-1) {
				t.Errorf("%s is made of %v: want libraries (lib/) first, then one body outside lib/", name, s.files)
			}
		}
		body := s.files[len(s.files)-1]
		if other, ok := bodyOf[body]; ok {
			t.Errorf("%s is the body of both %s and %s", body, other, name)
		}
		bodyOf[body] = name
	}
	for _, f := range embeddedLua(t) {
		if !used[f] {
			t.Errorf("lua/%s is used by no script: remove it, or add its script to scripts() in this file", f)
		}
	}
}

var (
	headerSlot = regexp.MustCompile(`(?m)^--\s+((?:KEYS|ARGV)\[\d+\])`)
	codeSlot   = regexp.MustCompile(`(?:KEYS|ARGV)\[\d+\]`)
)

// A script's header (its leading comment lines) lists each KEYS[i] and
// ARGV[i] that its body reads, and no other.
func TestScriptHeaders(t *testing.T) {
	for name, s := range scripts() {
		body := s.files[len(s.files)-1]
		src, err := luaFiles.ReadFile("lua/" + body)
		if err != nil {
			t.Fatal(err)
		}
		header, code := splitHeader(string(src))
		declared := make(map[string]bool)
		for _, m := range headerSlot.FindAllStringSubmatch(header, -1) {
			declared[m[1]] = true
		}
		read := make(map[string]bool)
		for _, m := range codeSlot.FindAllString(code, -1) {
			read[m] = true
		}
		if len(declared) == 0 {
			t.Errorf("lua/%s (%s): no KEYS or ARGV named in its header", body, name)
		}
		for _, slot := range slices.Sorted(maps.Keys(read)) {
			if !declared[slot] {
				t.Errorf("lua/%s (%s) reads %s, which its header does not name", body, name, slot)
			}
		}
		for _, slot := range slices.Sorted(maps.Keys(declared)) {
			if !read[slot] {
				t.Errorf("lua/%s (%s): its header names %s, which it does not read", body, name, slot)
			}
		}
	}
}

// splitHeader cuts a Lua file into its leading comment lines and the rest.
func splitHeader(src string) (header, code string) {
	rest := src
	for rest != "" {
		line, after, _ := strings.Cut(rest, "\n")
		if !strings.HasPrefix(line, "--") {
			break
		}
		rest = after
	}
	return src[:len(src)-len(rest)], rest
}
