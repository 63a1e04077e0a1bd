//go:build unix

package queue_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/helpcaster/helpcaster/internal/redistest"
	"github.com/helpcaster/helpcaster/signaling/queue"
	"github.com/helpcaster/helpcaster/signaling/routing"
)

// BenchmarkAssign measures one placement's store work as the queue grows:
// each op is one Enqueue at the back and one Assign from the front, so the
// queue keeps its length. Sub-benchmarks:
//
//	len=N        customers waiting before the run (10, 1000, 10000)
//	head=attached   all of them connected
//	head=detached   the first half detached (waiting for a resume), the
//	                rest connected: Assign must look past them
//	routing=none|skills   no match rules, or the placement benchmarks' rules
//
// For Redis, redis-cpu-µs/op is the redis-server process's CPU per op (from
// /proc) and redis-cmd-µs/op the time it spent executing the two scripts.
//
// Run: go test -run '^$' -bench Assign -benchtime 2000x -count 3 ./signaling/queue
func BenchmarkAssign(b *testing.B) {
	b.Run("store=memory", func(b *testing.B) {
		runAssign(b, func(b *testing.B) (queue.Store, func() (time.Duration, time.Duration)) {
			return queue.NewMemory(nil), nil
		})
	})
	b.Run("store=redis", func(b *testing.B) {
		srv := redistest.Start(b)
		admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		defer admin.Close()
		pid, err := redisPID(b.Context(), admin)
		if err != nil {
			b.Fatal(err)
		}
		c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		defer c.Close()
		runAssign(b, func(b *testing.B) (queue.Store, func() (time.Duration, time.Duration)) {
			if err := admin.FlushDB(b.Context()).Err(); err != nil {
				b.Fatal(err)
			}
			// Reading the counters resets the command statistics.
			counters := func() (time.Duration, time.Duration) {
				cpu, err := procCPU(pid)
				if err != nil {
					b.Fatal(err)
				}
				cmd, err := redisCommandTime(b.Context(), admin)
				if err != nil {
					b.Fatal(err)
				}
				return cpu, cmd
			}
			return queue.NewRedis(c), counters
		})
	})
}

func runAssign(b *testing.B, open func(b *testing.B) (queue.Store, func() (cpu, cmd time.Duration))) {
	for _, routed := range []bool{false, true} {
		for _, n := range []int{10, 1000, 10000} {
			for _, detachedHead := range []bool{false, true} {
				name := fmt.Sprintf("routing=none/len=%d/head=attached", n)
				if routed {
					name = fmt.Sprintf("routing=skills/len=%d/head=attached", n)
				}
				if detachedHead {
					name = name[:len(name)-len("attached")] + "detached"
				}
				b.Run(name, func(b *testing.B) {
					var p *routing.Policy
					if routed {
						p = benchPolicy(b)
					}
					s, counters := open(b)
					benchAssign(b, s, counters, n, detachedHead, p)
				})
			}
		}
	}
}

func benchAssign(b *testing.B, s queue.Store, counters func() (time.Duration, time.Duration), n int, detachedHead bool, p *routing.Policy) {
	ctx := b.Context()
	const org = "bench-assign"
	for i := range benchAgents {
		a := queue.Agent{Org: org, Session: "agent-" + strconv.Itoa(i), Queues: []string{benchQueue}, Capacity: 1 << 30, Skills: benchSkills}
		if err := s.SetAgent(ctx, a, true); err != nil {
			b.Fatal(err)
		}
	}
	add := func(sid string) {
		e := queue.Entry{Org: org, Queue: benchQueue, Session: sid, Attrs: benchAttrs, Priority: p.Priority(benchAttrs)}
		if _, err := s.Enqueue(ctx, e, 0); err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		sid := "pre-" + strconv.Itoa(i)
		add(sid)
		if detachedHead && i < n/2 {
			if _, err := s.Detach(ctx, org, benchQueue, sid, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	}
	var cpu0 time.Duration
	if counters != nil {
		cpu0, _ = counters()
	}
	b.ResetTimer()
	for i := range b.N {
		add("c" + strconv.Itoa(i))
		if _, ok, err := s.Assign(ctx, org, benchQueue, p); err != nil || !ok {
			b.Fatalf("Assign = %v, %v", ok, err)
		}
	}
	b.StopTimer()
	if counters != nil {
		cpu, cmd := counters()
		b.ReportMetric(micros(cpu-cpu0)/float64(b.N), "redis-cpu-µs/op")
		b.ReportMetric(micros(cmd)/float64(b.N), "redis-cmd-µs/op")
	}
}

// BenchmarkSnapshot measures what a queue refresh asks of the store (the
// hub's refresh, signaling/queuestats.go): one Snapshot of a queue of len
// customers and 32 agents. It grows with the queue by nature, which is why
// the hub bounds how often it refreshes rather than how much.
//
// Run: go test -run '^$' -bench Snapshot ./signaling/queue
func BenchmarkSnapshot(b *testing.B) {
	stores := map[string]func(b *testing.B) queue.Store{
		"memory": func(*testing.B) queue.Store { return queue.NewMemory(nil) },
		"redis": func(b *testing.B) queue.Store {
			srv := redistest.Start(b)
			c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
			b.Cleanup(func() { _ = c.Close() })
			return queue.NewRedis(c)
		},
	}
	for _, name := range []string{"memory", "redis"} {
		for _, n := range []int{10, 1000, 10000} {
			b.Run(fmt.Sprintf("store=%s/len=%d", name, n), func(b *testing.B) {
				s := stores[name](b)
				ctx := b.Context()
				const org = "bench-snapshot"
				for i := range benchAgents {
					a := queue.Agent{Org: org, Session: "agent-" + strconv.Itoa(i), Queues: []string{benchQueue}, Capacity: 1, Skills: benchSkills}
					if err := s.SetAgent(ctx, a, true); err != nil {
						b.Fatal(err)
					}
				}
				for i := range n {
					e := queue.Entry{Org: org, Queue: benchQueue, Session: "c" + strconv.Itoa(i), Attrs: benchAttrs}
					if _, err := s.Enqueue(ctx, e, 0); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for range b.N {
					snap, err := s.Snapshot(ctx, org, benchQueue, time.Now().Add(-time.Hour))
					if err != nil || len(snap.Waiting) != n {
						b.Fatalf("Snapshot = %d waiting, %v", len(snap.Waiting), err)
					}
				}
			})
		}
	}
}
