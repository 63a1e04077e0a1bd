package bidi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

// FirefoxOptions says how to start Firefox.
type FirefoxOptions struct {
	// Path is the Firefox binary; empty: firefox-esr, then firefox, from PATH.
	Path string
	// Prefs are written to the fresh profile's user.js (string, bool and
	// integer values).
	Prefs map[string]any
	// Log receives the browser's output, line by line; nil discards it.
	Log func(line string)
}

// Browser is a headless Firefox process with a fresh profile and a BiDi
// session. Close stops every process it started and removes the profile.
type Browser struct {
	Conn *Conn

	cmd     *exec.Cmd
	profile string
	exited  chan struct{} // closed when the main process has been waited for
	output  chan struct{} // closed when every process has closed its output
}

// stopGrace is how long Close lets Firefox shut down by itself before the
// whole process group is killed.
const stopGrace = 5 * time.Second

var listening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// PID is the browser's main process id, which is also its process group id.
func (b *Browser) PID() int { return b.cmd.Process.Pid }

// ProfileDir is the browser's temporary profile directory.
func (b *Browser) ProfileDir() string { return b.profile }

// FirefoxPath finds the Firefox binary: firefox-esr, then firefox.
func FirefoxPath() (string, error) {
	for _, name := range []string{"firefox-esr", "firefox"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("bidi: neither firefox-esr nor firefox is in PATH")
}

// LaunchFirefox starts headless Firefox in its own process group with a new
// profile, waits for its WebDriver BiDi server (on a port the browser picks)
// and starts a session. ctx bounds the start only.
func LaunchFirefox(ctx context.Context, opt FirefoxOptions) (_ *Browser, err error) {
	path := opt.Path
	if path == "" {
		if path, err = FirefoxPath(); err != nil {
			return nil, err
		}
	}
	js, err := userJS(opt.Prefs)
	if err != nil {
		return nil, err
	}
	profile, err := os.MkdirTemp("", "bidi-firefox-")
	if err != nil {
		return nil, fmt.Errorf("bidi: profile: %w", err)
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), js, 0o600); err != nil {
		os.RemoveAll(profile)
		return nil, fmt.Errorf("bidi: profile: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		os.RemoveAll(profile)
		return nil, fmt.Errorf("bidi: output pipe: %w", err)
	}
	cmd := exec.Command(path, "--headless", "--no-remote", "--profile", profile,
		"--remote-debugging-port", "0", "about:blank")
	cmd.Env = append(os.Environ(), "MOZ_CRASHREPORTER_DISABLE=1")
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group, so that Close can kill the content processes
	// too; and killed if this process dies first (a test that times out).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		os.RemoveAll(profile)
		return nil, fmt.Errorf("bidi: start %s: %w", path, err)
	}
	w.Close() // the browser and its children hold the only write ends now
	b := &Browser{cmd: cmd, profile: profile, exited: make(chan struct{}), output: make(chan struct{})}
	go func() {
		cmd.Wait() //nolint:errcheck // a killed browser exits with a signal; nothing to report
		close(b.exited)
	}()
	url := make(chan string, 1)
	go b.readOutput(r, opt.Log, url)
	defer func() {
		if err != nil {
			b.Close()
		}
	}()

	var endpoint string
	select {
	case endpoint = <-url:
	case <-b.exited:
		return nil, fmt.Errorf("bidi: %s exited before its BiDi server started (state %v)", path, cmd.ProcessState)
	case <-ctx.Done():
		return nil, fmt.Errorf("bidi: waiting for %s to start: %w", path, ctx.Err())
	}
	if b.Conn, err = Dial(ctx, strings.TrimSuffix(endpoint, "/")+"/session"); err != nil {
		return nil, err
	}
	if err := b.Conn.Call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}}, nil); err != nil {
		return nil, err
	}
	return b, nil
}

// readOutput passes the browser's output to log and the BiDi address to url.
// It ends when every process of the browser has closed its output.
func (b *Browser) readOutput(r *os.File, log func(string), url chan<- string) {
	defer close(b.output)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	found := false
	for sc.Scan() {
		line := sc.Text()
		if !found {
			if m := listening.FindStringSubmatch(line); m != nil {
				found = true
				url <- m[1]
			}
		}
		if log != nil {
			log(line)
		}
	}
	// A line over the buffer stops the scanner: drain the rest unread.
	io.Copy(io.Discard, r) //nolint:errcheck // nothing to do about a read error here
}

// Close ends the session, lets Firefox exit for a few seconds, then kills
// its whole process group, waits for every process to be gone and removes
// the profile.
func (b *Browser) Close() error {
	if b.Conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
		b.Conn.Call(ctx, "browser.close", nil, nil) //nolint:errcheck // the connection may drop before the reply
		cancel()
		b.Conn.Close()
	}
	select {
	case <-b.exited:
	case <-time.After(stopGrace):
	}
	// The group outlives its leader while content processes remain.
	if err := syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("bidi: kill firefox's process group: %w", err)
	}
	<-b.exited
	var errs []error
	select {
	case <-b.output:
	case <-time.After(stopGrace):
		errs = append(errs, errors.New("bidi: a firefox process outside its process group still holds its output"))
	}
	if err := os.RemoveAll(b.profile); err != nil {
		errs = append(errs, fmt.Errorf("bidi: remove profile: %w", err))
	}
	return errors.Join(errs...)
}

// userJS writes prefs as user_pref lines, sorted by name. Firefox prefs are
// strings, booleans or integers; anything else is an error.
func userJS(prefs map[string]any) ([]byte, error) {
	names := make([]string, 0, len(prefs))
	for name := range prefs {
		names = append(names, name)
	}
	sort.Strings(names)
	var sb strings.Builder
	for _, name := range names {
		switch prefs[name].(type) {
		case string, bool, int, int32, int64:
		default:
			return nil, fmt.Errorf("bidi: pref %q: a %T is not a string, bool or integer", name, prefs[name])
		}
		n, _ := json.Marshal(name) // strings and numbers always encode
		v, _ := json.Marshal(prefs[name])
		fmt.Fprintf(&sb, "user_pref(%s, %s);\n", n, v)
	}
	return []byte(sb.String()), nil
}
