package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// nodeSample is what one scrape of a node's /metrics gives.
type nodeSample struct {
	ok        bool
	at        time.Time
	cpu       float64 // process_cpu_seconds_total
	rss       float64 // process_resident_memory_bytes
	forwarded float64 // RTP packets sent to subscribers
	placed    float64 // helpcaster_queue_placements_total
	ended     float64 // helpcaster_calls_ended_total
}

// hosted adds up one node's placements and calls ended over the run,
// across restarts (a counter that went down started again from 0).
type hosted struct {
	seen          bool
	last          nodeSample
	placed, ended float64
	restarts      int
}

// observe adds scrape s of node i to its totals. Called by one goroutine
// at a time (the sampler, then Run's last scrape).
func (r *runner) observe(i int, s nodeSample) {
	h := &r.hosted[i]
	if !h.seen {
		// The run's baseline.
		h.seen, h.last = true, s
		return
	}
	if s.placed < h.last.placed || s.ended < h.last.ended {
		h.restarts++
		h.placed += s.placed
		h.ended += s.ended
	} else {
		h.placed += s.placed - h.last.placed
		h.ended += s.ended - h.last.ended
	}
	h.last = s
}

// scrapeNode reads one node's metrics.
func scrapeNode(ctx context.Context, hc *http.Client, url string) (nodeSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nodeSample{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nodeSample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nodeSample{}, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nodeSample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	m, err := parseMetrics(b)
	if err != nil {
		return nodeSample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	const pkts = "helpcaster_sfu_rtp_packets_total"
	return nodeSample{ok: true, at: time.Now(), cpu: m.sum("process_cpu_seconds_total"), rss: m.sum("process_resident_memory_bytes"),
		forwarded: m.sum(pkts, "direction", "out"), placed: m.sum("helpcaster_queue_placements_total"),
		ended: m.sum("helpcaster_calls_ended_total")}, nil
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// udpDrops returns how many datagrams the kernel dropped, for lack of
// receive buffer, on the UDP sockets that process pid ("self" for this one)
// holds open (the drops column of /proc/net/udp and udp6).
func udpDrops(pid string) (int64, error) {
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

// machineIdle returns the idle and iowait time of all cores from /proc/stat.
// With a tickless kernel these are measured, not sampled, so busy time over
// a window is cores × wall time minus idle, which also counts the short
// bursts that tick sampling of the busy fields misses.
func machineIdle() (time.Duration, error) {
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

// udpRcvbufErrors is this machine's count (its network namespace's) of
// datagrams dropped on full UDP receive buffers, from /proc/net/snmp.
func udpRcvbufErrors() (int64, error) {
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
