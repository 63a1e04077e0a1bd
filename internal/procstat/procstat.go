// Package procstat reads what Linux's /proc says of a process and of the
// machine, for the load measurements (the bench harness and the SFU's cost
// tests): CPU time, context switches, UDP receive drops, idle time. It
// keeps no state; every call reads /proc afresh.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Stat is a process's CPU time and context switches.
type Stat struct {
	User, Sys time.Duration // utime, stime (USER_HZ ticks, 100 per second on Linux)
	Threads   int
	Switches  int64 // voluntary and involuntary context switches of its live threads
}

// CPU is the process's user and system time.
func (p Stat) CPU() time.Duration { return p.User + p.Sys }

// Read reads /proc/PID/stat and the context switch counts of every
// thread in /proc/PID/task.
func Read(pid int) (Stat, error) {
	var p Stat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, err
	}
	// The command name (field 2) may hold spaces; fields start after ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return p, errors.New("bad /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 18 {
		return p, errors.New("short /proc stat")
	}
	// f[0] is field 3 (state): utime is field 14, stime 15, num_threads 20.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	threads, err3 := strconv.Atoi(f[17])
	if err := errors.Join(err1, err2, err3); err != nil {
		return p, err
	}
	const tick = time.Second / 100
	p.User, p.Sys, p.Threads = time.Duration(utime)*tick, time.Duration(stime)*tick, threads
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, path := range tasks {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the thread exited
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				p.Switches += n
			}
		}
	}
	return p, nil
}

// SelfCPU is this process's CPU time so far.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// UDPDrops returns how many datagrams the kernel dropped, for lack of
// receive buffer, on the UDP sockets that process pid ("self" for this one)
// holds open (the drops column of /proc/net/udp and udp6).
func UDPDrops(pid string) (int64, error) {
	fds, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		return 0, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink("/proc/" + pid + "/fd/" + fd.Name())
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var drops int64
	for _, table := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 13 || !inodes[f[9]] {
				continue
			}
			n, _ := strconv.ParseInt(f[12], 10, 64)
			drops += n
		}
	}
	return drops, nil
}

// MachineIdle returns the idle and iowait time of all cores from /proc/stat.
// With a tickless kernel these are measured, not sampled, so busy time over
// a window is cores × wall time minus idle, which also counts the short
// bursts that tick sampling of the busy fields misses.
func MachineIdle() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait ...
	if len(f) < 6 || f[0] != "cpu" {
		return 0, errors.New("bad /proc/stat")
	}
	idle, err1 := strconv.ParseInt(f[4], 10, 64)
	iowait, err2 := strconv.ParseInt(f[5], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(idle+iowait) * time.Second / 100, nil
}

// UDPRcvbufErrors is this machine's count (its network namespace's) of
// datagrams dropped on full UDP receive buffers, from /proc/net/snmp.
func UDPRcvbufErrors() (int64, error) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, err
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				return strconv.ParseInt(f[i], 10, 64)
			}
		}
	}
	return 0, errors.New("no Udp RcvbufErrors in /proc/net/snmp")
}
