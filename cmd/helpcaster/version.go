package main

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set only at build time:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/helpcaster
//
// Nothing assigns it at run time.
var version string

// versionString is what "helpcaster version" prints:
// "helpcaster <version> (<go version>)".
func versionString() string {
	info, ok := debug.ReadBuildInfo()
	return "helpcaster " + buildVersion(version, info, ok) + " (" + runtime.Version() + ")"
}

// buildVersion picks the version: the ldflags value, else the main module
// version, else the VCS revision, else "devel".
func buildVersion(ldflags string, info *debug.BuildInfo, ok bool) string {
	if ldflags != "" {
		return ldflags
	}
	if !ok || info == nil {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + strings.TrimSpace(rev)
}
