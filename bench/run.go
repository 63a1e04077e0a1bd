package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/helpcaster/helpcaster/bench/media"
	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/internal/procstat"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// assignTimeout is how long a customer may wait for an agent before the
// call counts as failed (support, turn).
const assignTimeout = 30 * time.Second

// runner is one run in progress.
type runner struct {
	cfg   Config
	org   *auth.Org
	media *media.Set
	start time.Time
	end   time.Time // the calls' end, before any wait for their recordings
	hc    *http.Client
	// harnessCPU is this process's CPU time when the run started.
	harnessCPU time.Duration
	// harnessDrops is the most datagrams the kernel was seen to have
	// dropped on this process's full UDP sockets.
	harnessDrops int64
	// machineDrops is the machine's UDP receive-buffer drops at the start
	// (all processes), then their increase over the run.
	machineDrops int64

	mu       sync.Mutex
	members  []*member
	calls    []*call
	failures map[string]int
	series   []Point
	nodes    []nodeSample // first scrape of each node
	lastNode []nodeSample
	started  atomic.Int64    // calls (or customers) started
	up       atomic.Int64    // calls assigned (or customers served)
	placed   []time.Duration // queue: join to assigned
	exact    *Exact          // queue: the verdicts
	hosted   []hosted        // per node of cfg.MetricsURLs: placements and calls ended over the run
	joins    []time.Duration // support: a customer's connect to assigned; broadcast: a supervisor's connect to assigned
	// receiving are the members of support calls whose media was
	// published, both sides: what MediaHold waits for.
	receiving []*member
	// upNode is each node's last scrape while the calls were up (support,
	// turn: the sampler's last before the hang-ups).
	upNode []nodeSample
	// finish is each node's scrape once its recordings were stored (Record);
	// finished says every node's were, finishAt when.
	finish      []nodeSample
	finished    bool
	finishAt    time.Time
	finishSpool float64 // the most spool bytes seen meanwhile, all nodes
}

// member is one simulated client.
type member struct {
	role       string
	c          *client.Client
	rx         *receiver
	pub        *media.Publisher
	assignedAt time.Time
	expect     bool    // media should reach it
	rec        recSeen // the recording messages it was sent
}

// call is one customer/agent pair.
type call struct {
	customer, agent *member
	room            string // the call's id, from assigned
	failed          string // first failure reason
}

// Run runs the scenario cfg describes until its duration has passed (or
// ctx ends) and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, failures: map[string]int{}, hc: &http.Client{}}
	if !cfg.Demo {
		r.org = &auth.Org{ID: cfg.Org, APIKey: cfg.Key, APISecret: cfg.Secret, Queues: []auth.Queue{{Name: queueName(cfg.Queue)}}}
	}
	if cfg.Scenario != ScenarioQueue {
		set, err := media.Load()
		if err != nil {
			return nil, err
		}
		r.media = set
	}
	// The first scrape both checks the nodes answer and is the baseline.
	for _, u := range cfg.MetricsURLs {
		s, err := scrapeNode(ctx, r.hc, u)
		if err != nil {
			cfg.Logger.Warn("bench: no server metrics; server figures will be missing", "url", u, "err", err)
		}
		r.nodes = append(r.nodes, s)
	}
	r.lastNode = append([]nodeSample(nil), r.nodes...)
	r.hosted = make([]hosted, len(r.nodes))
	for i, s := range r.nodes {
		if s.ok {
			r.observe(i, s)
		}
	}
	r.start, r.harnessCPU = time.Now(), procstat.SelfCPU()
	r.machineDrops, _ = procstat.UDPRcvbufErrors()
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { r.sampleLoop(runCtx) })
	if cfg.MediaHold > 0 && (cfg.Scenario == ScenarioSupport || cfg.Scenario == ScenarioTURN) {
		wg.Go(func() {
			if r.holdMedia(runCtx) {
				cancel()
			}
		})
	}
	switch cfg.Scenario {
	case ScenarioSupport, ScenarioTURN:
		r.support(runCtx)
	case ScenarioBroadcast:
		r.broadcast(runCtx)
	case ScenarioQueue:
		r.queueStorm(runCtx)
	}
	cancel()
	wg.Wait()
	r.upNode = append([]nodeSample(nil), r.lastNode...)
	// A last scrape for the totals: the sampler's may have been cut short.
	for i, u := range cfg.MetricsURLs {
		if s, err := scrapeNode(ctx, r.hc, u); err == nil {
			r.observe(i, s)
			r.lastNode[i] = s
		}
	}
	r.end = time.Now()
	if cfg.Record {
		r.finishRecordings(ctx)
	}
	return r.report(), nil
}

func queueName(q string) string {
	if q == "" {
		return "default"
	}
	return q
}

// fail counts a failure by reason.
func (r *runner) fail(reason string) {
	r.mu.Lock()
	r.failures[reason]++
	r.mu.Unlock()
}

// token mints a token for the i-th simulated user of role, or fetches a
// demo token from the node.
func (r *runner) token(ctx context.Context, role string, i, node int) (string, error) {
	if r.cfg.Demo {
		return r.demoToken(ctx, role, node)
	}
	c := auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: fmt.Sprintf("bench-%s-%d", role, i)}, Role: role, Queue: r.cfg.Queue,
		RecordConsent: r.cfg.Record && role == protocol.RoleCustomer}
	ttl := r.cfg.Duration + 10*time.Minute
	if ttl > 24*time.Hour {
		ttl = 24 * time.Hour
	}
	tok, err := auth.Mint(r.org, c, ttl, time.Now())
	if err != nil {
		return "", fmt.Errorf("bench: mint token: %w", err)
	}
	return tok, nil
}

// demoToken fetches a token from a node's demo endpoint.
func (r *runner) demoToken(ctx context.Context, role string, node int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := httpURL(r.cfg.URLs[node%len(r.cfg.URLs)], "/demo/token") + "?role=" + url.QueryEscape(role)
	if r.cfg.Record && role == protocol.RoleCustomer {
		u += "&consent=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("demo token: %w", err)
	}
	defer resp.Body.Close()
	var v struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("demo token: %s (is the server run with --dev?)", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v); err != nil || v.Token == "" {
		return "", fmt.Errorf("demo token: unexpected answer: %v", err)
	}
	return v.Token, nil
}

// join connects the i-th user of role to a node and joins; agents also
// say they are available. The client lives until ctx ends.
func (r *runner) join(ctx context.Context, role string, i, node int) (*member, string) {
	tok, err := r.token(ctx, role, i, node)
	if err != nil {
		r.cfg.Logger.Warn("bench: no token", "err", err)
		return nil, "token"
	}
	m := &member{role: role, rx: &receiver{}}
	opts := client.Options{URL: r.cfg.URLs[node%len(r.cfg.URLs)], LoopbackOnly: r.cfg.LoopbackOnly,
		RelayOnly: r.cfg.Scenario == ScenarioTURN, CaptureTime: true, OnTrack: m.rx.onTrack,
		NoMedia: r.cfg.Scenario == ScenarioQueue}
	c, err := client.Dial(ctx, opts)
	if err != nil {
		return nil, "connect"
	}
	m.c = c
	jctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := c.Join(jctx, tok); err != nil {
		c.Close()
		return nil, "join:" + errorCode(err)
	}
	if role == protocol.RoleAgent {
		if err := c.Send(jctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
			c.Close()
			return nil, "connect"
		}
	}
	r.mu.Lock()
	r.members = append(r.members, m)
	r.mu.Unlock()
	return m, ""
}

// errorCode names a join error by the server's code (never its message,
// which could carry data).
func errorCode(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return string(pe.Code)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "closed"
}

// pace starts n things at the configured ramp, calling f(i) on its own
// goroutine for each, and waits for them all.
func (r *runner) pace(ctx context.Context, n int, f func(i int)) {
	var wg sync.WaitGroup
	var every time.Duration
	if r.cfg.Ramp > 0 {
		every = time.Duration(float64(time.Second) / r.cfg.Ramp)
	}
	next := time.Now()
	for i := range n {
		if every > 0 && i > 0 {
			next = next.Add(every)
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(next)):
			}
		}
		if ctx.Err() != nil {
			break
		}
		r.started.Add(1)
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}

// support runs customer/agent pairs through the queue, both publishing,
// until ctx ends.
func (r *runner) support(ctx context.Context) {
	r.pace(ctx, r.cfg.Calls, func(i int) {
		cl := &call{}
		r.mu.Lock()
		r.calls = append(r.calls, cl)
		r.mu.Unlock()
		failed := func(reason string) {
			cl.failed = reason
			r.fail(reason)
		}
		// With several nodes, the two sides of a call are on different
		// ones when they can be.
		agent, reason := r.join(ctx, protocol.RoleAgent, i, i+1)
		if agent == nil {
			failed("agent_" + reason)
			return
		}
		defer agent.c.Close()
		cl.agent = agent
		begin := time.Now()
		customer, reason := r.join(ctx, protocol.RoleCustomer, i, i)
		if customer == nil {
			failed(reason)
			return
		}
		defer customer.c.Close()
		cl.customer = customer
		actx, cancel := context.WithTimeout(ctx, assignTimeout)
		defer cancel()
		for _, m := range []*member{customer, agent} {
			msg, err := m.c.Next(actx, protocol.TypeAssigned, protocol.TypeEnded, protocol.TypeError, protocol.TypeBye)
			switch {
			case err != nil && ctx.Err() != nil:
				return // the run ended first
			case err != nil:
				failed("assign_timeout")
				return
			case msg.Type != protocol.TypeAssigned:
				failed(msg.Type + ":" + msg.Reason + string(msg.Code))
				return
			}
			m.assignedAt = time.Now()
			if m == customer {
				cl.room = msg.Room
			}
		}
		r.up.Add(1)
		r.mu.Lock()
		r.joins = append(r.joins, customer.assignedAt.Sub(begin))
		r.mu.Unlock()
		if r.cfg.Record {
			// Both sides must be told the call is recorded before media
			// flows; a call that is not still runs, as a failed one.
			rctx, cancel := context.WithTimeout(ctx, recordingTimeout)
			defer cancel()
			for _, m := range []*member{customer, agent} {
				reason, over := awaitRecording(ctx, rctx, m)
				if reason != "" && cl.failed == "" {
					failed(reason)
				}
				if over {
					return
				}
			}
		}
		customer.expect, agent.expect = true, true
		opts := media.Options{Audio: true, Video: !r.cfg.NoVideo, Codec: r.cfg.Codec, Simulcast: r.cfg.Simulcast,
			TopLayer: media.LayerFor(r.cfg.Bitrate)}
		for _, m := range []*member{customer, agent} {
			p, err := media.Publish(ctx, m.c, r.media, opts)
			if err != nil {
				if ctx.Err() == nil {
					failed("publish")
				}
				return
			}
			m.pub = p
		}
		r.mu.Lock()
		r.receiving = append(r.receiving, customer, agent)
		r.mu.Unlock()
		// The call holds until the run ends; the first message that says
		// it broke is its failure.
		watch := func(m *member) string {
			for {
				msg, err := m.c.Next(ctx)
				if ctx.Err() != nil {
					// The run is over: an ended that answers its last
					// hang-ups is no failure.
					return ""
				}
				if err != nil {
					return "disconnected"
				}
				switch msg.Type {
				case protocol.TypeRecording:
					m.rec.seen(msg)
				case protocol.TypeEnded, protocol.TypeError, protocol.TypeBye:
					return msg.Type + ":" + msg.Reason + string(msg.Code)
				}
			}
		}
		done := make(chan string, 2)
		for _, m := range []*member{customer, agent} {
			go func() { done <- watch(m) }()
		}
		for range 2 {
			if reason := <-done; reason != "" && cl.failed == "" {
				failed(reason)
			}
		}
		if r.cfg.Record && cl.failed == "" {
			for _, m := range []*member{customer, agent} {
				if m.rec.stopped != "" {
					failed("recording_stopped:" + m.rec.stopped)
					break
				}
			}
		}
	})
}

// holdMedia waits until both sides of every call of the run receive each
// kind of media it sends, then MediaHold more. It reports false if ctx
// ended first. (Calls are not paired with agents by the harness: with all
// agents available at once, customer i may well be served by agent j, so
// the run ends as a whole rather than call by call.)
func (r *runner) holdMedia(ctx context.Context) bool {
	kinds := []string{"audio", "video"}
	if r.cfg.NoVideo {
		kinds = kinds[:1]
	}
	flowing := func() bool {
		r.mu.Lock()
		members := append([]*member(nil), r.receiving...)
		r.mu.Unlock()
		if len(members) < 2*r.cfg.Calls {
			return false
		}
		for _, m := range members {
			for _, k := range kinds {
				if !m.rx.has(k) {
					return false
				}
			}
		}
		return true
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !flowing() {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(r.cfg.MediaHold):
		return true
	}
}

// broadcast starts one call whose customer publishes (the agent only
// receives), then has --subscribers supervisors monitor it, started at the
// ramp: one publisher, many subscribers, the SFU's fan-out.
func (r *runner) broadcast(ctx context.Context) {
	agent, reason := r.join(ctx, protocol.RoleAgent, 0, 0)
	if agent == nil {
		r.fail("agent_" + reason)
		return
	}
	defer agent.c.Close()
	customer, reason := r.join(ctx, protocol.RoleCustomer, 0, 0)
	if customer == nil {
		r.fail("publisher_" + reason)
		return
	}
	defer customer.c.Close()
	actx, cancel := context.WithTimeout(ctx, assignTimeout)
	defer cancel()
	var room string
	for _, m := range []*member{customer, agent} {
		msg, err := m.c.Next(actx, protocol.TypeAssigned, protocol.TypeEnded, protocol.TypeError, protocol.TypeBye)
		if err != nil || msg.Type != protocol.TypeAssigned {
			r.fail("publisher_not_assigned")
			return
		}
		m.assignedAt, room = time.Now(), msg.Room
	}
	opts := media.Options{Audio: true, Video: !r.cfg.NoVideo, Codec: r.cfg.Codec, Simulcast: r.cfg.Simulcast,
		TopLayer: media.LayerFor(r.cfg.Bitrate)}
	p, err := media.Publish(ctx, customer.c, r.media, opts)
	if err != nil {
		r.fail("publish")
		return
	}
	customer.pub, agent.expect = p, true
	r.pace(ctx, r.cfg.Subscribers, func(i int) {
		begin := time.Now()
		sup, reason := r.join(ctx, protocol.RoleSupervisor, i, i)
		if sup == nil {
			r.fail(reason)
			return
		}
		defer sup.c.Close()
		if err := sup.c.Send(ctx, protocol.Message{Type: protocol.TypeMonitor, Room: room}); err != nil {
			r.fail("disconnected")
			return
		}
		mctx, cancel := context.WithTimeout(ctx, assignTimeout)
		defer cancel()
		msg, err := sup.c.Next(mctx, protocol.TypeAssigned, protocol.TypeError, protocol.TypeBye)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			r.fail("assign_timeout")
			return
		case msg.Type != protocol.TypeAssigned:
			r.fail("monitor:" + msg.Type + ":" + msg.Code)
			return
		}
		sup.assignedAt, sup.expect = time.Now(), true
		r.up.Add(1)
		r.mu.Lock()
		r.joins = append(r.joins, sup.assignedAt.Sub(begin))
		r.mu.Unlock()
		// Monitoring lasts until the run ends; anything else is a failure.
		msg, err = sup.c.Next(ctx, protocol.TypeEnded, protocol.TypeError, protocol.TypeBye)
		switch {
		case err != nil && ctx.Err() == nil:
			r.fail("disconnected")
		case err == nil:
			r.fail(msg.Type + ":" + msg.Reason + msg.Code)
		}
	})
}
