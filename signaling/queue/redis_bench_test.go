//go:build unix

package queue_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/helpcaster/helpcaster/internal/redistest"
	"github.com/helpcaster/helpcaster/signaling/queue"
	"github.com/helpcaster/helpcaster/signaling/routing"
)

// Placement benchmarks: how many customers per second the queue store can
// place (one Enqueue of a new customer, then one Assign that pairs a waiting
// customer with an agent) when 1, 4 or 16 clients act at once. Each client
// is a goroutine with its own store (for Redis: its own go-redis client, as
// on separate nodes), all against one private redis-server.
//
// Sub-benchmarks:
//
//	release=yes  agents have capacity 1 and each client Releases the agent it
//	             got after every placement (three round trips per iteration).
//	             ns/op and placements/s include the Release; the latency
//	             percentiles cover Enqueue+Assign only.
//	release=no   agents have practically unlimited capacity and nothing is
//	             released: two round trips per placement.
//
// Metrics: placements/s, p50-µs and p99-µs (wall time of each placement's
// Enqueue+Assign); bench-cpu-% and bench-cpu-µs/placement (this process:
// clients, go-redis and the Go runtime); for Redis, redis-cpu-% and
// redis-cpu-µs/placement (the redis-server process, from /proc/<pid>/stat)
// and redis-cmd-µs/placement (time Redis spent executing the commands and
// scripts themselves, from INFO commandstats; the rest of its CPU is
// networking and the event loop). redis-server and this process share the
// machine's cores.
//
// Run: go test -run '^$' -bench Placement -benchtime 3s -count 3 ./signaling/queue

const (
	benchAgents = 32 // more than the largest client count
	benchQueue  = "support"
)

var benchClientCounts = []int{1, 4, 16}

// benchAttrs are typical routing attributes carried by each customer.
var benchAttrs = map[string]string{"language": "en", "tier": "gold", "product": "billing"}

// placementEnv is what one run (one b.N) of the harness needs.
type placementEnv struct {
	stores []queue.Store // one per client
	reset  func(b *testing.B)
	close  func()
	cpu    func() time.Duration // CPU used by the store's server so far; nil if none
	// cmdTime, if set, returns the time the server spent executing
	// commands (scripts included) since the last reset, and resets it.
	cmdTime func(b *testing.B) time.Duration
}

func BenchmarkRedisPlacement(b *testing.B) {
	srv := redistest.Start(b)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	pid, err := redisPID(b.Context(), admin)
	if err != nil {
		b.Logf("redis-server CPU not reported: %v", err)
	}
	var serverCPU func() time.Duration
	if pid > 0 {
		if _, err := procCPU(pid); err == nil {
			serverCPU = func() time.Duration {
				d, _ := procCPU(pid)
				return d
			}
		} else {
			b.Logf("redis-server CPU not reported: %v", err)
		}
	}
	open := func(b *testing.B, clients int) placementEnv {
		cs := make([]*redis.Client, clients)
		stores := make([]queue.Store, clients)
		for i := range cs {
			cs[i] = redis.NewClient(&redis.Options{Addr: srv.Addr()})
			stores[i] = queue.NewRedis(cs[i])
		}
		return placementEnv{
			stores: stores,
			reset: func(b *testing.B) {
				if err := admin.FlushDB(b.Context()).Err(); err != nil {
					b.Fatalf("FLUSHDB: %v", err)
				}
			},
			close: func() {
				for _, c := range cs {
					_ = c.Close()
				}
			},
			cpu: serverCPU,
			cmdTime: func(b *testing.B) time.Duration {
				d, err := redisCommandTime(b.Context(), admin)
				if err != nil {
					b.Fatal(err)
				}
				return d
			},
		}
	}
	b.Run("routing=none", func(b *testing.B) { runPlacement(b, open, nil) })
	b.Run("routing=skills", func(b *testing.B) { runPlacement(b, open, benchPolicy(b)) })
}

// benchPolicy matches the customers' language to an agent skill at level 2
// or more and ranks gold customers first: each Assign evaluates the rules
// for the agents ready and the customers in front.
func benchPolicy(b *testing.B) *routing.Policy {
	p := &routing.Policy{
		Requirements: []routing.Requirement{{Attr: "language", Steps: []routing.Step{{Level: 2}}}, {Attr: "product"}},
		Priorities:   []routing.PriorityRule{{Attr: "tier", Value: "gold", Priority: 10}},
	}
	if err := p.Validate(); err != nil {
		b.Fatal(err)
	}
	return p
}

// benchSkills lets every agent take every bench customer.
var benchSkills = routing.Skills{"language": {"en": 3, "de": 3}, "product": {"billing": 1}}

func BenchmarkMemoryPlacement(b *testing.B) {
	runPlacement(b, func(b *testing.B, clients int) placementEnv {
		m := queue.NewMemory(nil)
		stores := make([]queue.Store, clients)
		for i := range stores {
			stores[i] = m // one store shared by all clients, as on one node
		}
		return placementEnv{stores: stores, reset: func(*testing.B) {}, close: func() {}}
	}, nil)
}

// runPlacement runs the release=yes|no × clients=1,4,16 sub-benchmarks.
func runPlacement(b *testing.B, open func(b *testing.B, clients int) placementEnv, policy *routing.Policy) {
	for _, release := range []bool{true, false} {
		name := "release=no"
		if release {
			name = "release=yes"
		}
		b.Run(name, func(b *testing.B) {
			for _, n := range benchClientCounts {
				b.Run("clients="+strconv.Itoa(n), func(b *testing.B) {
					env := open(b, n)
					defer env.close()
					// A distinct org per sub-benchmark, and a fresh backend
					// for each b.N.
					org := fmt.Sprintf("bench-%s-%d", strings.TrimPrefix(name, "release="), n)
					benchPlacements(b, env, org, n, release, policy)
				})
			}
		})
	}
}

func benchPlacements(b *testing.B, env placementEnv, org string, clients int, release bool, policy *routing.Policy) {
	ctx := b.Context()
	env.reset(b)
	capacity := 1
	if !release {
		capacity = 1 << 30 // never runs out within a run
	}
	for i := range benchAgents {
		a := queue.Agent{Org: org, Session: "agent-" + strconv.Itoa(i), Queues: []string{benchQueue}, Capacity: capacity}
		if policy != nil {
			a.Skills = benchSkills
		}
		if err := env.stores[0].SetAgent(ctx, a, true); err != nil {
			b.Fatalf("SetAgent: %v", err)
		}
	}

	var (
		next     atomic.Int64 // claimed iterations; placement i is the i-th claimed
		firstErr error
		errOnce  sync.Once
		failed   atomic.Bool
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		failed.Store(true)
	}
	// place does one placement (and its Release) with customer session sid;
	// it returns the wall time of Enqueue+Assign.
	place := func(s queue.Store, sid string) (time.Duration, error) {
		start := time.Now()
		e := queue.Entry{Org: org, Queue: benchQueue, Session: sid, Attrs: benchAttrs, Priority: policy.Priority(benchAttrs)}
		if _, err := s.Enqueue(ctx, e, 0); err != nil {
			return 0, fmt.Errorf("Enqueue: %w", err)
		}
		a, ok, err := s.Assign(ctx, org, benchQueue, policy)
		d := time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("Assign: %w", err)
		}
		if !ok {
			// Every client enqueues before it assigns, so a customer is
			// always waiting; agents never run out of capacity.
			return 0, errors.New("Assign found no customer or no agent")
		}
		if release {
			if err := s.Release(ctx, org, a.Agent); err != nil {
				return 0, fmt.Errorf("Release: %w", err)
			}
		}
		return d, nil
	}

	// Warm up each client (connections, script cache) untimed.
	for c, s := range env.stores {
		for i := range 50 {
			if _, err := place(s, fmt.Sprintf("warm-%d-%d", c, i)); err != nil {
				b.Fatal(err)
			}
		}
	}

	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	wg.Add(clients)
	cpu0 := env.cpu
	var server0 time.Duration
	if cpu0 != nil {
		server0 = cpu0()
	}
	if env.cmdTime != nil {
		env.cmdTime(b) // reset
	}
	self0 := selfCPU()
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		go func(s queue.Store) {
			defer wg.Done()
			for !failed.Load() {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				d, err := place(s, "c"+strconv.FormatInt(i, 10))
				if err != nil {
					fail(err)
					return
				}
				lat[i] = d
			}
		}(env.stores[c])
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	self := selfCPU() - self0
	var cmd time.Duration
	if env.cmdTime != nil {
		cmd = env.cmdTime(b)
	}
	if firstErr != nil {
		b.Fatal(firstErr)
	}

	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "placements/s")
	b.ReportMetric(micros(percentile(lat, 50)), "p50-µs")
	b.ReportMetric(micros(percentile(lat, 99)), "p99-µs")
	b.ReportMetric(100*self.Seconds()/elapsed.Seconds(), "bench-cpu-%")
	b.ReportMetric(micros(self)/float64(b.N), "bench-cpu-µs/placement")
	if cpu0 != nil {
		server := cpu0() - server0
		b.ReportMetric(100*server.Seconds()/elapsed.Seconds(), "redis-cpu-%")
		b.ReportMetric(micros(server)/float64(b.N), "redis-cpu-µs/placement")
	}
	if env.cmdTime != nil {
		b.ReportMetric(micros(cmd)/float64(b.N), "redis-cmd-µs/placement")
	}
}

// percentile returns the p-th percentile (nearest rank) of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (len(sorted)*p + 99) / 100 // ceil(n·p/100)
	return sorted[max(rank, 1)-1]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// redisPID asks the server for its process id.
func redisPID(ctx context.Context, c *redis.Client) (int, error) {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return 0, err
	}
	for l := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server has no process_id")
}

// redisCommandTime returns the total time the server spent executing
// commands since the last CONFIG RESETSTAT (from INFO commandstats), then
// resets the statistics.
func redisCommandTime(ctx context.Context, c *redis.Client) (time.Duration, error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, err
	}
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		return 0, err
	}
	var usec int64
	for l := range strings.Lines(info) {
		// cmdstat_evalsha:calls=3,usec=49,usec_per_call=16.33,...
		if !strings.HasPrefix(l, "cmdstat_") {
			continue
		}
		for f := range strings.SplitSeq(strings.TrimSpace(l), ",") {
			if v, ok := strings.CutPrefix(f, "usec="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return 0, fmt.Errorf("INFO commandstats: %q: %w", l, err)
				}
				usec += n
			}
		}
	}
	return time.Duration(usec) * time.Microsecond, nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux platform Go supports.
const clockTicks = 100

// procCPU returns a process's user+system CPU time from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// fields after it start at 3 (state). utime and stime are 14 and 15.
	_, rest, ok := strings.Cut(string(raw), ") ")
	if !ok {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// selfCPU returns this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
