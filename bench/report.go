package bench

import (
	"cmp"
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"time"

	"github.com/helpcaster/helpcaster/bench/rtpstat"
	"github.com/helpcaster/helpcaster/internal/procstat"
)

// Report is what a run measured. It holds no personal data: users are
// simulated, and URLs are reduced to their hosts.
type Report struct {
	Scenario string       `json:"scenario"`
	Started  time.Time    `json:"started"`
	Seconds  float64      `json:"seconds"`
	Config   ReportConfig `json:"config"`

	Calls         Calls       `json:"calls"`
	JoinMs        Dist        `json:"join_ms"`           // connect to assigned
	FirstPacketMs Dist        `json:"first_packet_ms"`   // assigned to the first media packet
	FirstFrameMs  Dist        `json:"first_keyframe_ms"` // assigned to the first keyframe packet
	LatencyMs     Dist        `json:"latency_ms"`        // capture (send) to arrival, every packet
	Latency       []Bucket    `json:"latency_histogram"` // of LatencyMs
	Publishers    Publishers  `json:"publishers"`
	Audio         Media       `json:"audio"`
	Video         Media       `json:"video"`
	Server        Server      `json:"server"`
	Harness       Harness     `json:"harness"`
	Placements    *Placements `json:"placements,omitempty"` // queue scenario
	Exact         *Exact      `json:"exact,omitempty"`      // queue scenario: the exactly-once accounting
	Recording     *Recording  `json:"recording,omitempty"`  // support, turn: with Record, or when calls were recorded
	Series        []Point     `json:"series"`
	Objectives    []Objective `json:"objectives,omitempty"`
	Notes         []string    `json:"notes,omitempty"`
}

// ReportConfig is the run's configuration, without secrets.
type ReportConfig struct {
	Nodes       []string `json:"nodes"` // hosts
	Calls       int      `json:"calls,omitempty"`
	Subscribers int      `json:"subscribers,omitempty"`
	Customers   int      `json:"customers,omitempty"`
	Agents      int      `json:"agents,omitempty"`
	Duration    float64  `json:"duration_s"`
	Ramp        float64  `json:"ramp_per_s"`
	Simulcast   bool     `json:"simulcast"`
	Codec       string   `json:"codec,omitempty"`
	Bitrate     int      `json:"bitrate,omitempty"`
	Video       bool     `json:"video"`
	Record      bool     `json:"record,omitempty"` // customers consented to recording
	// Queue: the accounting's options.
	HoldS        float64  `json:"hold_s,omitempty"`
	HoldJitterS  float64  `json:"hold_jitter_s,omitempty"`
	Resume       float64  `json:"resume,omitempty"`
	ResumeInCall float64  `json:"resume_in_call,omitempty"`
	SettleS      float64  `json:"settle_s,omitempty"`
	Seed         int64    `json:"seed,omitempty"`
	CustomerURLs []string `json:"customer_nodes,omitempty"`
	AgentURLs    []string `json:"agent_nodes,omitempty"`
}

// Calls counts calls (customers for the queue scenario).
type Calls struct {
	Target   int            `json:"target"`
	Started  int            `json:"started"`
	Up       int            `json:"up"`     // assigned (placed)
	Failed   int            `json:"failed"` // calls with a failure
	Failures map[string]int `json:"failures,omitempty"`
}

// Dist summarizes a distribution, in milliseconds.
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// Bucket is one bar of a histogram.
type Bucket struct {
	LowerMs float64 `json:"lower_ms"`
	Count   uint64  `json:"count"`
}

// Media sums the received streams of one kind.
type Media struct {
	Streams    int     `json:"streams"`
	Packets    int64   `json:"packets"`
	Expected   int64   `json:"expected"`
	Lost       int64   `json:"lost"`
	LossPct    float64 `json:"loss_pct"`
	Late       int64   `json:"late"`
	Duplicates int64   `json:"duplicates"`
	// WorstLossPct is the loss of the stream that lost the most (percent
	// of its expected packets): one subscriber's worst case.
	WorstLossPct float64 `json:"worst_stream_loss_pct"`
	JitterMs     Dist    `json:"jitter_ms"`    // per stream
	BitrateKbps  Dist    `json:"bitrate_kbps"` // per stream, from its first to its last packet
}

// Publishers sums what the simulated publishers did.
type Publishers struct {
	Count          int   `json:"count"`
	KeyRequests    int64 `json:"key_requests"`    // PLIs and FIRs received
	EarlyKeyframes int64 `json:"early_keyframes"` // jumps to the next keyframe to answer them
}

// Server is what the nodes' metrics said over the run.
type Server struct {
	Nodes          int     `json:"nodes"`
	Scraped        bool    `json:"scraped"`
	CPUPct         float64 `json:"cpu_pct"`     // mean, percent of one core, all nodes
	CPUMaxPct      float64 `json:"cpu_max_pct"` // highest one-second sample
	CPUSeconds     float64 `json:"cpu_s"`       // over the run, all nodes
	RSSStartMiB    float64 `json:"rss_start_mib"`
	RSSMaxMiB      float64 `json:"rss_max_mib"`
	ForwardedPPS   float64 `json:"forwarded_pps"`
	CPUPerPacketUs float64 `json:"cpu_per_forwarded_packet_us"`
	CPUPerCallPct  float64 `json:"cpu_per_call_pct"`
}

// Harness is what the bench process itself spent.
type Harness struct {
	CPUPct         float64 `json:"cpu_pct"` // mean, percent of one core
	VideoStreams   int     `json:"video_streams"`
	StreamsPerCore float64 `json:"video_streams_per_core"`
	MaxCPUPct      float64 `json:"cpu_max_pct"`
	// UDPDrops is a floor of the datagrams the kernel dropped on the
	// harness's full sockets: loss there is the harness's, not the server's.
	UDPDrops int64 `json:"udp_drops"`
	// MachineBusyMaxPct is the busiest second of this machine, percent of
	// all its cores.
	MachineBusyMaxPct float64 `json:"machine_busy_max_pct"`
	// MachineUDPDrops is the datagrams this machine's kernel dropped on
	// full UDP receive buffers during the run, every process's sockets
	// (the server's too when it runs here).
	MachineUDPDrops int64 `json:"machine_udp_drops"`
	Cores           int   `json:"cores"`
}

// Placements is the queue scenario's throughput.
type Placements struct {
	Placed    int     `json:"placed"`
	PerSecond float64 `json:"per_second"` // from the first to the last placement
	WaitMs    Dist    `json:"wait_ms"`    // join to assigned
	// ServerCPUPerPlacementUs is the nodes' CPU over the run per customer
	// placed (joins, placement, the call's start and end).
	ServerCPUPerPlacementUs float64 `json:"server_cpu_per_placement_us"`
}

// Objective is a service-level objective given on the command line.
type Objective struct {
	Name  string  `json:"name"`
	Limit float64 `json:"limit"`
	Value float64 `json:"value"`
	Met   bool    `json:"met"`
}

// Objectives are the service-level objectives of a run; a zero (or, for
// the counts, negative) limit is not checked.
type Objectives struct {
	MaxLossPct       float64       // packets lost, percent of expected, audio and video
	MaxJoinP95       time.Duration // connect to assigned
	MaxFirstFrameP95 time.Duration // assigned to the first keyframe
	MaxLatencyP95    time.Duration // end-to-end, per packet
	MaxFailures      int           // failed calls; negative: not checked
}

func (o Objectives) check(rep *Report) []Objective {
	var out []Objective
	add := func(name string, limit, value float64) {
		out = append(out, Objective{Name: name, Limit: limit, Value: value, Met: value <= limit})
	}
	if o.MaxLossPct > 0 {
		var lost, expected int64
		for _, m := range []Media{rep.Audio, rep.Video} {
			lost += m.Lost
			expected += m.Expected
		}
		loss := 0.0
		if expected > 0 {
			loss = 100 * float64(lost) / float64(expected)
		}
		add("max-loss (%)", o.MaxLossPct, loss)
	}
	if o.MaxJoinP95 > 0 {
		add("max-join-p95 (ms)", ms(o.MaxJoinP95), rep.JoinMs.P95)
	}
	if o.MaxFirstFrameP95 > 0 {
		add("max-first-frame-p95 (ms)", ms(o.MaxFirstFrameP95), rep.FirstFrameMs.P95)
	}
	if o.MaxLatencyP95 > 0 {
		add("max-latency-p95 (ms)", ms(o.MaxLatencyP95), rep.LatencyMs.P95)
	}
	if o.MaxFailures >= 0 {
		add("max-failures", float64(o.MaxFailures), float64(rep.Calls.Failed))
	}
	return out
}

// Anomalies lists what broke exactly-once accounting (queue scenario), and
// a recorded run's recording errors (calls not told, recordings stopped
// early or not stored in time); empty otherwise.
func (r *Report) Anomalies() []string {
	return append(r.Exact.Anomalies(), r.Recording.anomalies()...)
}

// Met reports whether every objective was met.
func (r *Report) Met() bool {
	for _, o := range r.Objectives {
		if !o.Met {
			return false
		}
	}
	return true
}

func distOf(v []time.Duration) Dist {
	if len(v) == 0 {
		return Dist{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	q := func(p float64) float64 { return ms(s[int(p*float64(len(s)-1)+0.5)]) }
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Dist{N: len(s), Mean: ms(sum / time.Duration(len(s))), P50: q(0.5), P95: q(0.95), P99: q(0.99), Max: ms(s[len(s)-1])}
}

func distOfHist(h *rtpstat.Histogram) Dist {
	if h.Count() == 0 {
		return Dist{}
	}
	return Dist{N: int(h.Count()), Mean: ms(h.Mean()), P50: ms(h.Quantile(0.5)), P95: ms(h.Quantile(0.95)),
		P99: ms(h.Quantile(0.99)), Max: ms(h.Max())}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// report builds the Report once the run is over.
func (r *runner) report() *Report {
	end := r.end
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := &Report{Scenario: r.cfg.Scenario, Started: r.start, Seconds: end.Sub(r.start).Seconds(), Series: r.series}
	for _, u := range r.cfg.URLs {
		if p, err := url.Parse(u); err == nil {
			rep.Config.Nodes = append(rep.Config.Nodes, p.Host)
		}
	}
	rep.Config.Duration, rep.Config.Ramp = r.cfg.Duration.Seconds(), r.cfg.Ramp
	rep.Calls = Calls{Started: int(r.started.Load()), Up: int(r.up.Load()), Failures: map[string]int{}}
	switch r.cfg.Scenario {
	case ScenarioQueue:
		rep.Config.Customers, rep.Config.Agents = r.cfg.Customers, r.cfg.Agents
		rep.Config.HoldS, rep.Config.HoldJitterS = r.cfg.Hold.Seconds(), r.cfg.HoldJitter.Seconds()
		rep.Config.Resume, rep.Config.ResumeInCall = r.cfg.Resume, r.cfg.ResumeInCall
		rep.Config.SettleS, rep.Config.Seed = r.cfg.Settle.Seconds(), r.cfg.Seed
		for _, h := range []struct {
			from []string
			to   *[]string
		}{{r.cfg.CustomerURLs, &rep.Config.CustomerURLs}, {r.cfg.AgentURLs, &rep.Config.AgentURLs}} {
			for _, u := range h.from {
				if p, err := url.Parse(u); err == nil {
					*h.to = append(*h.to, p.Host)
				}
			}
		}
		rep.Calls.Target = r.cfg.Customers
	case ScenarioBroadcast:
		rep.Config.Subscribers = r.cfg.Subscribers
		rep.Config.Simulcast, rep.Config.Codec, rep.Config.Bitrate, rep.Config.Video = r.cfg.Simulcast, r.cfg.Codec, r.cfg.Bitrate, !r.cfg.NoVideo
		rep.Calls.Target = r.cfg.Subscribers
	default:
		rep.Config.Calls, rep.Config.Record = r.cfg.Calls, r.cfg.Record
		rep.Config.Simulcast, rep.Config.Codec, rep.Config.Bitrate, rep.Config.Video = r.cfg.Simulcast, r.cfg.Codec, r.cfg.Bitrate, !r.cfg.NoVideo
		rep.Calls.Target = r.cfg.Calls
	}
	for reason, n := range r.failures {
		rep.Calls.Failures[reason] = n
		rep.Calls.Failed += n
	}

	// Media: every stream of every member; first packet and first
	// keyframe per member, from its assignment.
	var joins, firstPkt, firstKey []time.Duration
	var latency rtpstat.Histogram
	var jitter [2][]time.Duration
	var bitrate [2][]time.Duration // kbit/s carried as a Duration for distOf
	joins = r.joins
	videoStreams := 0
	for _, m := range r.members {
		if m.pub != nil {
			rep.Publishers.Count++
			rep.Publishers.KeyRequests += m.pub.KeyRequests()
			rep.Publishers.EarlyKeyframes += m.pub.EarlyKeyframes()
		}
		snaps := m.rx.snapshot()
		var first, key time.Time
		for _, s := range snaps {
			k := 0
			mm := &rep.Audio
			if s.kind == "video" {
				k, mm = 1, &rep.Video
				videoStreams++
			}
			mm.Streams++
			mm.Packets += s.sum.Received
			mm.Expected += s.sum.Expected
			mm.Lost += s.sum.Lost
			mm.Late += s.sum.Late
			mm.Duplicates += s.sum.Duplicates
			mm.WorstLossPct = max(mm.WorstLossPct, 100*s.sum.LossFraction())
			if s.sum.Received > 1 {
				jitter[k] = append(jitter[k], s.sum.Jitter)
				if span := s.sum.Last.Sub(s.sum.First); span > 0 {
					kbps := float64(s.sum.Bytes) * 8 / span.Seconds() / 1e3
					bitrate[k] = append(bitrate[k], time.Duration(kbps*float64(time.Millisecond)))
				}
			}
			latency.Merge(&s.latency)
			if !s.sum.First.IsZero() && (first.IsZero() || s.sum.First.Before(first)) {
				first = s.sum.First
			}
			if !s.sum.FirstKey.IsZero() && (key.IsZero() || s.sum.FirstKey.Before(key)) {
				key = s.sum.FirstKey
			}
		}
		if m.assignedAt.IsZero() {
			continue
		}
		if !first.IsZero() {
			firstPkt = append(firstPkt, first.Sub(m.assignedAt))
		}
		if !key.IsZero() {
			firstKey = append(firstKey, key.Sub(m.assignedAt))
		}
	}
	if r.cfg.Scenario != ScenarioQueue {
		rep.JoinMs = distOf(joins)
		rep.FirstPacketMs, rep.FirstFrameMs = distOf(firstPkt), distOf(firstKey)
		rep.LatencyMs = distOfHist(&latency)
		latency.Buckets(func(lower time.Duration, n uint64) {
			rep.Latency = append(rep.Latency, Bucket{LowerMs: ms(lower), Count: n})
		})
		for k, mm := range []*Media{&rep.Audio, &rep.Video} {
			if mm.Expected > 0 {
				mm.LossPct = 100 * float64(mm.Lost) / float64(mm.Expected)
			}
			mm.JitterMs = distOf(jitter[k])
			mm.BitrateKbps = distOf(bitrate[k])
		}
		// A call (broadcast: a subscriber) whose clients got no media at
		// all, or no video when video was sent, failed.
		noMedia := func(m *member) string {
			switch {
			case m.rx.bytes() == 0:
				return "no_media"
			case !r.cfg.NoVideo && !m.rx.has("video"):
				return "no_video"
			}
			return ""
		}
		if r.cfg.Scenario == ScenarioBroadcast {
			for _, m := range r.members {
				if reason := noMedia(m); m.expect && reason != "" {
					rep.Calls.Failures[reason]++
					rep.Calls.Failed++
				}
			}
		}
		for _, c := range r.calls {
			if c.failed != "" || c.customer == nil || c.agent == nil || !c.customer.expect {
				continue
			}
			for _, m := range []*member{c.customer, c.agent} {
				if reason := noMedia(m); reason != "" {
					c.failed = reason
					rep.Calls.Failures[reason]++
					rep.Calls.Failed++
					break
				}
			}
		}
	} else {
		pl := &Placements{Placed: len(r.placed), WaitMs: distOf(r.placed)}
		if span := end.Sub(r.start).Seconds(); span > 0 {
			pl.PerSecond = float64(pl.Placed) / span
		}
		rep.Placements = pl
		if ex := r.exact; ex != nil {
			for i, u := range r.cfg.MetricsURLs {
				h := Hosting{Node: u, Scraped: r.hosted[i].seen, Placements: r.hosted[i].placed, CallsEnded: r.hosted[i].ended,
					Restarts: r.hosted[i].restarts}
				if p, err := url.Parse(u); err == nil {
					h.Node = p.Host
				}
				ex.Hosts = append(ex.Hosts, h)
			}
			// The never placed count as failed customers, by why.
			for why, n := range ex.NeverPlacedWhy {
				rep.Calls.Failures[why] += n
				rep.Calls.Failed += n
			}
			if ex.Unexplained > 0 {
				rep.Calls.Failures["not_placed"] += ex.Unexplained
				rep.Calls.Failed += ex.Unexplained
			}
			rep.Exact = ex
		}
	}

	// Server and harness, from the samples.
	rep.Server.Nodes = len(r.cfg.MetricsURLs)
	secs := rep.Seconds
	var cpu, fwd, cpuPct, fwdPS float64
	scraped := true
	for i := range r.nodes {
		first, last := r.nodes[i], r.lastNode[i]
		span := last.at.Sub(first.at).Seconds()
		if !first.ok || !last.ok || span <= 0 {
			scraped = false
			continue
		}
		if r.hosted[i].restarts > 0 || last.cpu < first.cpu {
			// Restarted during the run: its process counters began again.
			rep.Notes = append(rep.Notes, fmt.Sprintf("node %d restarted during the run: its CPU is left out", i+1))
			continue
		}
		cpu += last.cpu - first.cpu
		rep.Server.RSSStartMiB += first.rss / (1 << 20)
		fwd += last.forwarded - first.forwarded
		cpuPct += 100 * (last.cpu - first.cpu) / span
		fwdPS += (last.forwarded - first.forwarded) / span
	}
	rep.Server.Scraped = scraped && len(r.nodes) > 0
	rep.Server.CPUPct, rep.Server.ForwardedPPS, rep.Server.CPUSeconds = cpuPct, fwdPS, cpu
	for _, p := range r.series {
		rep.Server.CPUMaxPct = max(rep.Server.CPUMaxPct, p.ServerCPU)
		rep.Server.RSSMaxMiB = max(rep.Server.RSSMaxMiB, p.ServerRSSMiB)
		rep.Harness.MaxCPUPct = max(rep.Harness.MaxCPUPct, p.HarnessCPU)
	}
	// A run shorter than a sample has only its two scrapes.
	var lastRSS float64
	for _, n := range r.lastNode {
		if n.ok {
			lastRSS += n.rss / (1 << 20)
		}
	}
	rep.Server.RSSMaxMiB = max(rep.Server.RSSMaxMiB, lastRSS)
	rep.Server.CPUMaxPct = max(rep.Server.CPUMaxPct, cpuPct)
	if fwd > 0 {
		rep.Server.CPUPerPacketUs = 1e6 * cpu / fwd
	}
	if up := rep.Calls.Up; up > 0 && r.cfg.Scenario != ScenarioQueue {
		rep.Server.CPUPerCallPct = rep.Server.CPUPct / float64(up)
	}
	if pl := rep.Placements; pl != nil && pl.Placed > 0 && rep.Server.Scraped {
		pl.ServerCPUPerPlacementUs = 1e6 * cpu / float64(pl.Placed)
	}
	if r.cfg.Scenario == ScenarioSupport || r.cfg.Scenario == ScenarioTURN {
		rep.Recording = r.recordingReport(r.series)
	}
	harness := (procstat.SelfCPU() - r.harnessCPU).Seconds()
	if secs > 0 {
		rep.Harness.CPUPct = 100 * harness / secs
	}
	rep.Harness.VideoStreams = videoStreams
	if rep.Harness.CPUPct > 0 {
		rep.Harness.StreamsPerCore = float64(videoStreams) / (rep.Harness.CPUPct / 100)
	}
	rep.Harness.UDPDrops, rep.Harness.Cores = r.harnessDrops, runtime.NumCPU()
	if now, err := procstat.UDPRcvbufErrors(); err == nil && r.machineDrops > 0 {
		rep.Harness.MachineUDPDrops = now - r.machineDrops
	}
	busySecs := 0
	for _, p := range r.series {
		rep.Harness.MachineBusyMaxPct = max(rep.Harness.MachineBusyMaxPct, p.MachineBusy)
		if p.MachineBusy >= 90 {
			busySecs++
		}
	}
	if len(r.cfg.URLs) == 1 && isLoopback(r.cfg.URLs[0]) {
		rep.Notes = append(rep.Notes, "the server ran on this machine: its CPU and the harness's compete for the same cores")
	}
	// What limited the run, as far as this process can tell.
	if busySecs > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("this machine was at least 90%% busy for %d of %d seconds: figures then measure the machine as much as the server", busySecs, len(r.series)))
	}
	if rep.Harness.MaxCPUPct >= 90 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the harness itself used up to %.0f%% of a core: it may have been the bottleneck", rep.Harness.MaxCPUPct))
	}
	if d := rep.Harness.MachineUDPDrops; d > r.harnessDrops {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the kernel dropped %d datagrams on full UDP sockets of this machine during the run (all processes; the server's too when it runs here)", d))
	}
	if r.harnessDrops > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the kernel dropped at least %d datagrams on the harness's full sockets: that loss is the harness's", r.harnessDrops))
	}
	rep.Objectives = r.cfg.Objectives.check(rep)
	slices.SortFunc(rep.Objectives, func(a, b Objective) int { return cmp.Compare(a.Name, b.Name) })
	return rep
}

func isLoopback(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	h := p.Hostname()
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}
