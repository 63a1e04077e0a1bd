package turn

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRelayCostVsCoturn measures CPU per relayed packet of this TURN server
// and of coturn's turnserver under the same turnutils_uclient load, in one
// run, alternating. It is a measurement, not a check: it runs only with
// HELPCASTER_BENCH=1 and records figures with t.Log. Knobs:
// HELPCASTER_TURN_BENCH_CLIENTS (default 20 sessions), _MESSAGES (3000 per
// session), _INTERVAL (1 ms between a session's packets), _SIZE (1000 bytes),
// _ROUNDS (2), _PROCS (1 uclient process; more run at once for more load).
func TestRelayCostVsCoturn(t *testing.T) {
	if os.Getenv("HELPCASTER_BENCH") == "" {
		t.Skip("a measurement: set HELPCASTER_BENCH=1 to run it")
	}
	turnserver := coturnTool(t, "turnserver")
	clients, messages := envInt("HELPCASTER_TURN_BENCH_CLIENTS", 20), envInt("HELPCASTER_TURN_BENCH_MESSAGES", 3000)
	interval, size, rounds := envInt("HELPCASTER_TURN_BENCH_INTERVAL", 1), envInt("HELPCASTER_TURN_BENCH_SIZE", 1000), envInt("HELPCASTER_TURN_BENCH_ROUNDS", 2)
	peer := startPeer(t)

	ours, _ := startServer(t, peerPolicy(peer), 1000)
	ours.cfg.AllocationsPerIP = 1000

	// coturn with the same secret and loopback peers allowed.
	cport := freePort(t, "udp")
	cmd := exec.Command(turnserver, "-n", "--listening-ip", "127.0.0.1", "--listening-port", strconv.Itoa(cport),
		"--relay-ip", "127.0.0.1", "--use-auth-secret", "--static-auth-secret", testSecret, "--realm", DefaultRealm,
		"--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls", "--min-port", "43000", "--max-port", "43999",
		"--log-file", filepath.Join(t.TempDir(), "turnserver.log"), "--no-stdout-log", "--simple-log")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	time.Sleep(500 * time.Millisecond)

	creds, _ := NewCredentials([]byte(testSecret), 10*time.Minute)
	user, pass := creds.Mint("bench", time.Now())
	procs := envInt("HELPCASTER_TURN_BENCH_PROCS", 1)
	// load runs procs turnutils_uclient processes at once and returns the
	// packets relayed (each echoed packet is relayed once each way).
	load := func(port int) (relayed int, wall time.Duration, out string) {
		type result struct {
			n   int
			out string
		}
		results := make(chan result, procs)
		start := time.Now()
		for range procs {
			go func() {
				n, o := loadOne(t, port, user, pass, peer, clients, messages, size, interval)
				results <- result{n, o}
			}()
		}
		for range procs {
			r := <-results
			relayed += r.n
			out += r.out
		}
		return relayed, time.Since(start), out
	}
	for round := 1; round <= rounds; round++ {
		// This process is the server (and the idle test around it); the
		// load generator and the peer are other processes.
		before := selfCPU()
		relayed, wall, out := load(ours.cfg.UDPPort)
		report(t, round, "helpcaster", relayed, wall, selfCPU().minus(before), out)

		before = procCPU(t, cmd.Process.Pid)
		relayed, wall, out = load(cport)
		report(t, round, "coturn    ", relayed, wall, procCPU(t, cmd.Process.Pid).minus(before), out)
	}
}

// loadOne runs one turnutils_uclient and returns the packets it had
// relayed (sent and received back) and its output.
func loadOne(t *testing.T, port int, user, pass string, peer, clients, messages, size, interval int) (int, string) {
	bin := coturnTool(t, "turnutils_uclient")
	args := []string{"-c", "-p", strconv.Itoa(port), "-u", user, "-w", pass, "-e", "127.0.0.1", "-r", strconv.Itoa(peer),
		"-n", strconv.Itoa(messages), "-m", strconv.Itoa(clients), "-l", strconv.Itoa(size), "-z", strconv.Itoa(interval), "-X", "127.0.0.1"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	out := string(b)
	if err != nil {
		t.Errorf("uclient: %v\n%s", err, out)
		return 0, out
	}
	m := regexp.MustCompile(`tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\n`).FindAllStringSubmatch(out, -1)
	if m == nil {
		t.Errorf("no packet totals in uclient output:\n%s", out)
		return 0, out
	}
	last := m[len(m)-1]
	sent, _ := strconv.Atoi(last[1])
	recv, _ := strconv.Atoi(last[2])
	return sent + recv, out
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// cpuTime is a process's CPU time so far, in user space and in the kernel.
type cpuTime struct{ user, sys time.Duration }

func (c cpuTime) minus(d cpuTime) cpuTime { return cpuTime{c.user - d.user, c.sys - d.sys} }

func report(t *testing.T, round int, server string, relayed int, wall time.Duration, cpu cpuTime, out string) {
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(relayed) }
	t.Logf("round %d %s: %d packets relayed in %v, %.2f µs CPU per packet (user %.2f, kernel %.2f), %.0f packets/s; %s",
		round, server, relayed, wall.Round(time.Millisecond), per(cpu.user+cpu.sys), per(cpu.user), per(cpu.sys),
		float64(relayed)/wall.Seconds(), lostRe.FindString(out))
}

// selfCPU is this process's CPU time so far.
func selfCPU() cpuTime {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return cpuTime{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())}
}

// procCPU is a process's CPU time so far, from /proc/<pid>/stat.
func procCPU(t *testing.T, pid int) cpuTime {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return cpuTime{time.Duration(utime) * time.Second / 100, time.Duration(stime) * time.Second / 100} // USER_HZ
}
