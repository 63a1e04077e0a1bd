package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/bench"
	"github.com/helpcaster/helpcaster/internal/nodetest"
	"github.com/helpcaster/helpcaster/internal/redistest"
)

// The fault-injection tests: three real serve processes on one private
// Redis, a queue storm from the bench harness (in this process), and a
// fault mid-storm; the harness's exactly-once accounting must find nothing
// wrong. Each case has its own queue, so what one leaves behind (customers
// kept for the resume grace) cannot disturb the next.

// chaosGrace is the nodes' --resume-grace: long enough to resume across a
// node's death, short enough that nothing lingers for long.
const chaosGrace = "20s"

// chaosCluster is a private Redis and three nodes n1, n2, n3.
type chaosCluster struct {
	rs     *redistest.Server
	nodes  []*nodetest.Node
	secret []byte
	queues []string
}

// startChaosCluster builds the binary and starts Redis and three nodes
// whose org has the given queues.
func startChaosCluster(t *testing.T, queues []string) *chaosCluster {
	t.Helper()
	rs := redistest.Start(t)
	bin := nodetest.Build(t, ".")
	secret := strings.Repeat("c", 40)
	var b strings.Builder
	b.WriteString("orgs:\n  - id: acme\n    api_key: acme-key\n    api_secret: " + secret + "\n    queues:\n")
	for _, q := range queues {
		fmt.Fprintf(&b, "      - name: %s\n        max_length: 5000\n", q)
	}
	config := filepath.Join(t.TempDir(), "helpcaster.yaml")
	if err := os.WriteFile(config, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cc := &chaosCluster{rs: rs, secret: []byte(secret), queues: queues, nodes: make([]*nodetest.Node, 3)}
	logLevel := os.Getenv("HELPCASTER_CHAOS_LOG_LEVEL") // the nodes' --log-level; warn unless set
	if logLevel == "" {
		logLevel = "warn"
	}
	var wg sync.WaitGroup
	for i := range cc.nodes {
		wg.Go(func() {
			cc.nodes[i] = nodetest.Start(t, bin, nodetest.Options{ID: "n" + strconv.Itoa(i+1), Config: config, Redis: rs.URL(),
				Extra: []string{"--resume-grace", chaosGrace, "--log-level", logLevel}})
		})
	}
	wg.Wait()
	for _, n := range cc.nodes {
		if n == nil {
			t.FailNow() // Start has said why
		}
	}
	waitLive(t, rs.URL(), 3)
	return cc
}

// urls are the signaling URLs of nodes (1-based numbers).
func (cc *chaosCluster) urls(nodes ...int) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, cc.nodes[n-1].WS)
	}
	return out
}

// chaosCase is one storm and its fault.
type chaosCase struct {
	name       string
	customers  int
	agents     int
	ramp       float64
	hold       time.Duration
	jitter     time.Duration
	resume     float64 // share of customers dropping once while waiting
	inCall     float64 // ... once during their call
	custNodes  []int
	agentNodes []int
	stuckAfter time.Duration // 0: 15 s; a node's death is noticed after 15 s
	faultAt    time.Duration // after the run starts
	fault      func(t *testing.T, cc *chaosCluster)
	// restore brings the cluster back to three nodes after the run.
	restore func(t *testing.T, cc *chaosCluster)
}

// rampTime is how long the customers take to join.
func (c chaosCase) rampTime() time.Duration {
	if c.ramp <= 0 {
		return 0
	}
	return time.Duration(float64(c.customers) / c.ramp * float64(time.Second))
}

// settle is how long the run waits after the last join for every customer
// to be served: 20 s, plus the time the agents need to serve whoever has
// not been served by then (calls of hold plus half the jitter, and a
// margin for setting each up), plus the time a fault takes out of service
// (a node taken for dead, Redis back). A customer still waiting after it
// is counted as never placed, so it must not be too short for the load.
func (c chaosCase) settle() time.Duration {
	perCall := c.hold + c.jitter/2 + 100*time.Millisecond
	service := time.Duration(c.customers) * perCall / time.Duration(max(c.agents, 1))
	backlog := max(service-c.rampTime(), 0)
	fault := time.Duration(0)
	if c.fault != nil {
		fault = 20 * time.Second
	}
	return 20*time.Second + backlog*3/2 + fault
}

// run runs one case on the cluster and returns the report (nil when the
// harness could not run).
func (cc *chaosCluster) run(t *testing.T, c chaosCase, seed int64) *bench.Report {
	t.Helper()
	stuck := c.stuckAfter
	if stuck == 0 {
		stuck = 15 * time.Second
	}
	settle := c.settle()
	cfg := bench.Config{
		Scenario:     bench.ScenarioQueue,
		CustomerURLs: cc.urls(c.custNodes...), AgentURLs: cc.urls(c.agentNodes...),
		Org: "acme", Key: "acme-key", Secret: cc.secret, Queue: c.name,
		Customers: c.customers, Agents: c.agents, Ramp: c.ramp,
		Hold: c.hold, HoldJitter: c.jitter, Resume: c.resume, ResumeInCall: c.inCall,
		// The hard bound of the run; it ends much sooner (all served, or
		// the settle after the last join).
		Duration:     c.rampTime() + settle + time.Minute,
		Settle:       settle,
		RetryFor:     30 * time.Second,
		StuckAfter:   stuck,
		LostAfter:    10 * time.Second,
		Seed:         seed,
		LoopbackOnly: true,
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Duration+2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	if c.fault != nil {
		wg.Go(func() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(c.faultAt):
			}
			c.fault(t, cc)
		})
	}
	rep, err := bench.Run(ctx, cfg)
	wg.Wait()
	if c.restore != nil {
		c.restore(t, cc)
	}
	if err != nil {
		t.Errorf("%s: bench: %v", c.name, err)
		return nil
	}
	var out strings.Builder
	_ = rep.WriteTable(&out)
	t.Logf("%s (seed %d):\n%s", c.name, seed, out.String())
	return rep
}

// restart starts node n again if it is not running.
func (cc *chaosCluster) restart(t *testing.T, n int) {
	t.Helper()
	node := cc.nodes[n-1]
	select {
	case <-node.Exited():
		node.Restart(t)
	default:
	}
}

// chaosCases are the short fault-injection cases, in order.
func chaosCases() []chaosCase {
	return []chaosCase{
		{name: "storm", customers: 200, agents: 5, ramp: 20, custNodes: []int{1, 2}, agentNodes: []int{3}},
		{name: "held", customers: 100, agents: 5, ramp: 10, hold: 300 * time.Millisecond, jitter: 700 * time.Millisecond,
			resume: 0.1, inCall: 0.1, custNodes: []int{1, 2}, agentNodes: []int{3}},
		{name: "nodekill", customers: 120, agents: 5, ramp: 15, hold: 200 * time.Millisecond, jitter: 300 * time.Millisecond,
			custNodes: []int{1, 2}, agentNodes: []int{2, 3}, stuckAfter: 25 * time.Second, faultAt: 4 * time.Second,
			fault: func(t *testing.T, cc *chaosCluster) {
				cc.nodes[0].Kill()
				time.Sleep(5 * time.Second)
				cc.nodes[0].Restart(t)
			},
			restore: func(t *testing.T, cc *chaosCluster) { cc.restart(t, 1) }},
		{name: "rediskill", customers: 120, agents: 5, ramp: 15, hold: 200 * time.Millisecond, jitter: 300 * time.Millisecond,
			custNodes: []int{1, 2}, agentNodes: []int{3}, faultAt: 4 * time.Second,
			fault: func(t *testing.T, cc *chaosCluster) { cc.rs.Restart(t) }},
		{name: "redisstop", customers: 120, agents: 5, ramp: 15, hold: 200 * time.Millisecond, jitter: 300 * time.Millisecond,
			custNodes: []int{1, 2}, agentNodes: []int{3}, faultAt: 4 * time.Second,
			fault: func(t *testing.T, cc *chaosCluster) {
				cc.rs.Pause(t)
				time.Sleep(4 * time.Second)
				cc.rs.Continue(t)
			}},
		{name: "drain", customers: 120, agents: 6, ramp: 15, hold: 500 * time.Millisecond, jitter: 500 * time.Millisecond,
			custNodes: []int{1, 2}, agentNodes: []int{2, 3}, stuckAfter: 25 * time.Second, faultAt: 4 * time.Second,
			fault: func(t *testing.T, cc *chaosCluster) {
				if err := cc.nodes[1].Signal(syscall.SIGTERM); err != nil {
					t.Error(err)
				}
			},
			restore: func(t *testing.T, cc *chaosCluster) {
				select {
				case <-cc.nodes[1].Exited():
				case <-time.After(30 * time.Second):
					t.Errorf("n2 had not exited 30 s after SIGTERM")
				}
				cc.restart(t, 2)
			}},
	}
}

// TestChaos runs each fault-injection case once (about 2 to 5 minutes in
// all): every customer must be placed exactly once or told why not, no
// call stuck, no agent lost.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the fault-injection test starts three nodes and takes minutes")
	}
	cases := chaosCases()
	var queues []string
	for _, c := range cases {
		queues = append(queues, c.name)
	}
	cc := startChaosCluster(t, queues)
	seed := time.Now().UnixNano()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := cc.run(t, c, seed+int64(i))
			if rep == nil {
				return
			}
			for _, a := range rep.Anomalies() {
				t.Errorf("%s: %s", c.name, a)
			}
			if rep.Exact.Joined == 0 {
				t.Errorf("%s: no customer joined", c.name)
			}
		})
	}
}

// TestChaosRounds is `make chaos`: HELPCASTER_CHAOS_ROUNDS rounds (skipped
// when unset) of random storms, each with a random fault at a random
// moment, seeded by HELPCASTER_CHAOS_SEED (default: the clock; printed, so
// a failing round can be run again). It prints each round's counts and
// "rounds clean: X of N".
func TestChaosRounds(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("HELPCASTER_CHAOS_ROUNDS"))
	if rounds <= 0 {
		t.Skip("set HELPCASTER_CHAOS_ROUNDS (make chaos)")
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv("HELPCASTER_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("HELPCASTER_CHAOS_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("chaos: %d rounds, HELPCASTER_CHAOS_SEED=%d", rounds, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	var queues []string
	for i := range rounds {
		queues = append(queues, "r"+strconv.Itoa(i+1))
	}
	cc := startChaosCluster(t, queues)
	faults := chaosCases()
	placements := [][2][]int{{{1, 2}, {3}}, {{1, 2, 3}, {1, 2, 3}}, {{1}, {2, 3}}, {{2, 3}, {1}}}
	clean := 0
	for i := range rounds {
		f := faults[rng.IntN(len(faults))]
		p := placements[rng.IntN(len(placements))]
		c := f
		c.name = queues[i]
		c.customers = 50 + rng.IntN(250)
		c.agents = 2 + rng.IntN(8)
		c.ramp = float64(5 + rng.IntN(30))
		c.hold = time.Duration(rng.IntN(3)) * time.Duration(rng.Int64N(int64(time.Second)))
		c.jitter = time.Duration(rng.Int64N(int64(500 * time.Millisecond)))
		c.resume, c.inCall = rng.Float64()*0.2, rng.Float64()*0.2
		c.custNodes, c.agentNodes = p[0], p[1]
		c.faultAt = time.Duration(rng.Int64N(int64(8 * time.Second)))
		c.stuckAfter = 25 * time.Second
		if f.name == "drain" || f.name == "nodekill" {
			// Keep a node up for each role: the faulted node is n1 (kill)
			// or n2 (drain); spread both roles over all three.
			c.custNodes, c.agentNodes = []int{1, 2, 3}, []int{1, 2, 3}
		}
		roundSeed := seed + int64(i)
		rep := cc.run(t, c, roundSeed)
		if rep == nil {
			continue
		}
		e := rep.Exact
		anomalies := rep.Anomalies()
		verdict := "clean"
		if len(anomalies) == 0 {
			clean++
		} else {
			verdict = strings.Join(anomalies, "; ")
		}
		t.Logf("round %d/%d fault %s, %d customers on %v, %d agents on %v, ramp %.0f/s, hold %v+%v, resume %.2f/%.2f, fault at %v: "+
			"placed once %d, never placed %d (unexplained %d), duplicates %d, phantoms %d, stuck %d, agents lost %d, inversions %d, resumes %d/%d: %s",
			i+1, rounds, f.name, c.customers, c.custNodes, c.agents, c.agentNodes, c.ramp, c.hold, c.jitter, c.resume, c.inCall, c.faultAt,
			e.PlacedOnce, e.NeverPlaced, e.Unexplained, e.Duplicates, e.Phantoms, e.StuckCalls, e.AgentsLost, e.Inversions,
			e.Resumes.Succeeded, e.Resumes.Attempted, verdict)
	}
	t.Logf("rounds clean: %d of %d (HELPCASTER_CHAOS_SEED=%d)", clean, rounds, seed)
	if clean < rounds {
		t.Errorf("rounds clean: %d of %d", clean, rounds)
	}
}
