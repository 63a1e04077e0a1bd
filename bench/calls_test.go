package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/internal/procstat"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

const runCallsCost = "HELPCASTER_BENCH=1 HELPCASTER_BENCH_CALLS=25 HELPCASTER_BENCH_WINDOW=10s " +
	"go test -run TestCallsCost -v -count=1 -timeout 10m ./bench"

// defaultWarmup is how long media flows to every client before the window
// opens (HELPCASTER_BENCH_WARMUP). Besides set-up (ICE, DTLS, first
// keyframes, bandwidth ramp-up), the server's memory needs it: pion's NACK
// responder keeps the last 1024 packets of every down track, in 1460-byte
// buffers, and at 50 audio packets/s an audio track takes 20.5 s to fill
// them. Before that the resident memory is still growing.
const defaultWarmup = 25 * time.Second

// participant is one client of the scenario.
type participant struct {
	role string
	c    *client.Client
	// bad holds the first message that means the call broke (ended, error,
	// bye) once the call is up.
	bad atomic.Value // string
}

// TestCallsCost measures the server's CPU per forwarded packet and its
// resident memory per subscribed track with N concurrent 1:1 calls on
// loopback: N agents and N customers, both sides of each call publishing the
// VP8 and Opus samples in real time. The server is the real binary in its own
// process, so its CPU is its own; the clients run in this process.
//
// Environment: HELPCASTER_BENCH=1 runs it; HELPCASTER_BENCH_CALLS (25),
// HELPCASTER_BENCH_WINDOW (10s) and HELPCASTER_BENCH_WARMUP (25s) shape it;
// HELPCASTER_BENCH_SERVE_FLAGS adds flags to `helpcaster serve`.
func TestCallsCost(t *testing.T) {
	if os.Getenv("HELPCASTER_BENCH") != "1" {
		t.Skip("load measurement, run by hand: " + runCallsCost)
	}
	calls := envInt(t, "HELPCASTER_BENCH_CALLS", 25)
	window := envDuration(t, "HELPCASTER_BENCH_WINDOW", 10*time.Second)
	warmup := envDuration(t, "HELPCASTER_BENCH_WARMUP", defaultWarmup)
	video, err := filepath.Abs("../testdata/sample.ivf")
	if err != nil {
		t.Fatal(err)
	}
	audio := strings.TrimSuffix(video, ".ivf") + ".ogg"

	// Extra serve flags, e.g. HELPCASTER_BENCH_SERVE_FLAGS=--media-batch-writes.
	flags := strings.Fields(os.Getenv("HELPCASTER_BENCH_SERVE_FLAGS"))
	srv := startServer(t, buildBinary(t, t.TempDir()), flags...)
	t.Logf("server: helpcaster serve --dev ... %s (pid %d)", strings.Join(flags, " "), srv.cmd.Process.Pid)
	pid := srv.cmd.Process.Pid
	// Everything below, including the clients' lives, ends by this deadline.
	ctx, cancel := context.WithTimeout(context.Background(), warmup+window+5*time.Minute)
	t.Cleanup(cancel)

	// The idle server, before any client.
	time.Sleep(time.Second)
	idle := scrape(t, ctx, srv)

	// Clients are closed (all at once, bounded) before the server is
	// stopped: cleanups run last-registered first.
	var parts []*participant
	t.Cleanup(func() { closeAll(t, parts) })

	step := func(d time.Duration) (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, d+time.Duration(calls)*time.Second)
	}
	sctx, scancel := step(30 * time.Second)
	defer scancel()
	join := func(role string) *participant {
		t.Helper()
		tok, err := srv.token(sctx, role)
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Dial(ctx, client.Options{URL: "ws" + strings.TrimPrefix(srv.base, "http") + "/v1/signal",
			Origin: srv.base, LoopbackOnly: true})
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		p := &participant{role: role, c: c}
		parts = append(parts, p)
		if _, err := c.Join(sctx, tok); err != nil {
			t.Fatalf("%s join: %v", role, err)
		}
		return p
	}
	for range calls {
		p := join(protocol.RoleAgent)
		if err := p.c.Send(sctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
			t.Fatal(err)
		}
	}
	for range calls {
		join(protocol.RoleCustomer)
	}
	for i, p := range parts {
		m, err := p.c.Next(sctx, protocol.TypeAssigned, protocol.TypeEnded, protocol.TypeError, protocol.TypeBye)
		if err != nil || m.Type != protocol.TypeAssigned {
			t.Fatalf("%s %d not assigned: %+v %v", p.role, i, m, err)
		}
		// From here on, drain the client's messages and note any that say
		// the call broke.
		p.c.Go(func(ctx context.Context) {
			for {
				m, err := p.c.Next(ctx)
				if err != nil {
					return
				}
				switch m.Type {
				case protocol.TypeEnded, protocol.TypeError, protocol.TypeBye:
					p.bad.CompareAndSwap(nil, fmt.Sprintf("%s %s %s", m.Type, m.Reason, m.Code))
				}
			}
		})
	}
	t.Logf("%d calls assigned", calls)

	pctx, pcancel := step(30 * time.Second)
	defer pcancel()
	for _, p := range parts {
		if err := p.c.PublishFiles(pctx, video, audio); err != nil {
			t.Fatalf("%s publish: %v", p.role, err)
		}
	}
	for {
		waiting := 0
		for i, p := range parts {
			if err := p.c.MediaError(); err != nil {
				t.Fatalf("%s %d: %v", p.role, i, err)
			}
			if s := p.c.Stats(); s.AudioPackets == 0 || s.VideoPackets == 0 {
				waiting++
			}
		}
		if waiting == 0 {
			break
		}
		if err := srv.alive(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-pctx.Done():
			var missing []string
			for i, p := range parts {
				if s := p.c.Stats(); s.AudioPackets == 0 || s.VideoPackets == 0 {
					missing = append(missing, fmt.Sprintf("%s %d %+v", p.role, i, s))
				}
			}
			m, _ := srv.metrics(ctx)
			t.Fatalf("%d of %d clients still receive no audio or no video (the allocator has paused video %.0f times):\n%s",
				waiting, len(parts), m.sum("helpcaster_sfu_video_paused_allocations_total"), strings.Join(missing, "\n"))
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Logf("all %d clients receive audio and video; warming up %v", len(parts), warmup)
	time.Sleep(warmup)

	// The window. Server CPU is also sampled once a second to show how
	// steady it was.
	before := take(t, ctx, srv, parts)
	// HELPCASTER_BENCH_PROFILE=FILE saves a CPU profile of the server over
	// the window, HELPCASTER_BENCH_ALLOCS=FILE the allocations made in it
	// (both need --debug-pprof in HELPCASTER_BENCH_SERVE_FLAGS).
	profiled := make(chan error, 2)
	for env, kind := range map[string]string{"HELPCASTER_BENCH_PROFILE": "profile", "HELPCASTER_BENCH_ALLOCS": "allocs"} {
		if path := os.Getenv(env); path != "" {
			go func() { profiled <- srv.saveProfile(ctx, kind, window, path) }()
		} else {
			profiled <- nil
		}
	}
	var perSec []float64
	tick := time.NewTicker(time.Second)
	last := before.proc.CPU()
	lastAt := before.at
	end := time.After(window)
window:
	for {
		select {
		case <-end:
			break window
		case now := <-tick.C:
			if p, err := procstat.Read(pid); err == nil {
				perSec = append(perSec, 100*(p.CPU()-last).Seconds()/now.Sub(lastAt).Seconds())
				last, lastAt = p.CPU(), now
			}
		case <-ctx.Done():
			t.Fatal("deadline during the window")
		}
	}
	tick.Stop()
	after := take(t, ctx, srv, parts)
	for range 2 {
		if err := <-profiled; err != nil {
			t.Errorf("profile: %v", err)
		}
	}
	if err := srv.alive(); err != nil {
		t.Fatal(err)
	}

	// Sanity: every call stayed up and every client received both kinds
	// of media during the window. Timings are reported, never asserted.
	var received int64
	for i, p := range parts {
		if b, _ := p.bad.Load().(string); b != "" {
			t.Errorf("%s %d: call broke: %s", p.role, i, b)
		}
		da, dv := after.audio[i]-before.audio[i], after.video[i]-before.video[i]
		if da <= 0 || dv <= 0 {
			t.Errorf("%s %d received %d audio and %d video packets in the window (no video: see the allocator's video pauses below)", p.role, i, da, dv)
		}
		received += da + dv
	}
	r := result(idle, before, after)
	if r.outPkts <= 0 {
		t.Fatalf("the server forwarded no packets in the window")
	}
	lo, hi := minMax(perSec)
	t.Logf("window %.2fs: forwarded %.0f packets (%.0f/s; audio %.0f/s, video %.0f/s), ingress %.0f/s (%.2f egress per ingress), clients counted %d (%.1f%% of forwarded)",
		r.secs, r.outPkts, r.outPkts/r.secs, r.outAudio/r.secs, r.outVideo/r.secs, r.inPkts/r.secs, r.outPkts/r.inPkts,
		received, 100*float64(received)/r.outPkts)
	t.Logf("server CPU %.1f%% of one core (metrics) / %.1f%% (/proc/%d/stat: user %.1f%%, system %.1f%%); per second %.0f-%.0f%%",
		100*r.cpu/r.secs, 100*r.procCPU/r.secs, pid, 100*r.procUser/r.secs, 100*r.procSys/r.secs, lo, hi)
	t.Logf("server CPU per forwarded packet %.1f µs (metrics), %.1f µs (/proc); %.2f context switches per forwarded packet (%.0f/s)",
		r.usPerPkt, 1e6*r.procCPU/r.outPkts, r.switches/r.outPkts, r.switches/r.secs)
	t.Logf("server RSS idle %.1f MiB, at window start %.1f MiB, at end %.1f MiB; %.0f subscribed tracks (%d expected); %.0f KiB RSS per subscribed track",
		r.rssIdle/(1<<20), r.rssStart/(1<<20), r.rss/(1<<20), r.subscribed, 4*calls, r.rssPerTrack/(1<<10))
	t.Logf("server Go heap in use %.1f MiB, live after the last GC about %.1f MiB (idle %.1f MiB): %.0f KiB live heap per subscribed track; goroutine stacks %.1f MiB",
		r.heapInuse/(1<<20), r.live/(1<<20), r.liveIdle/(1<<20), (r.live-r.liveIdle)/max(r.subscribed, 1)/(1<<10), r.stacks/(1<<20))
	t.Logf("server goroutines idle %.0f, loaded %.0f (%.1f per participant); threads %d; heap allocations %.1f per forwarded packet (%.0f B); %.0f GC cycles in the window",
		r.goroutinesIdle, r.goroutines, (r.goroutines-r.goroutinesIdle)/float64(len(parts)), after.proc.Threads, r.mallocsPerPkt, r.allocBytesPerPkt, r.gcs)
	t.Logf("server in window: %.0f packets dropped, %.0f NACKs received, %.0f keyframe requests sent, %.0f video pauses and %.0f layer switches by the allocator; forwarding latency (read to write) mean %.0f µs",
		r.dropped, r.nacks, r.pli, r.paused, r.switchesLayer, 1e6*r.fwdLatency)
	t.Logf("subscribers' bandwidth estimates in window: %.0f samples, mean %.0f kbit/s, %.0f%% at or below 400 kbit/s (a call's video is about 250 kbit/s)",
		r.estimates, r.estimateMean/1e3, 100*r.estimatesLow)
	t.Logf("harness (this process, %d clients) CPU %.1f%% of one core; whole machine %.0f%% busy of %d cores (other processes %.0f%% of one core)",
		len(parts), 100*r.harness/r.secs, 100*r.machBusy/r.secs/float64(runtime.NumCPU()), runtime.NumCPU(), 100*r.other/r.secs)
	t.Logf("UDP datagrams dropped by the kernel for a full receive buffer in the window: %d at the server's socket, %d at the clients' sockets",
		after.drops[0]-before.drops[0], after.drops[1]-before.drops[1])

	fmt.Println("| calls | window | forwarded pkt/s | egress / ingress | forwarded Mbit/s (payload) | server CPU % of a core | µs server CPU / forwarded pkt | context switches / forwarded pkt | server RSS MiB | RSS KiB / subscribed track | live heap KiB / subscribed track | harness CPU % of a core | machine busy % | video pauses |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	fmt.Printf("| %d | %.0f s | %.0f | %.2f | %.2f | %.1f | %.1f | %.2f | %.1f | %.0f | %.0f | %.1f | %.0f | %.0f |\n",
		calls, r.secs, r.outPkts/r.secs, r.outPkts/r.inPkts, 8*r.outBytes/r.secs/1e6, 100*r.cpu/r.secs, r.usPerPkt,
		r.switches/r.outPkts, r.rss/(1<<20), r.rssPerTrack/(1<<10), (r.live-r.liveIdle)/max(r.subscribed, 1)/(1<<10),
		100*r.harness/r.secs, 100*r.machBusy/r.secs/float64(runtime.NumCPU()), r.paused)
}

// snapshot is what is read at one edge of the window.
type snapshot struct {
	at           time.Time
	m            metrics
	proc         procstat.Stat
	self         time.Duration
	drops        [2]int64      // UDP receive drops: server, this process
	idle         time.Duration // all cores
	audio, video []int64       // per participant
}

func take(t *testing.T, ctx context.Context, srv *server, parts []*participant) snapshot {
	t.Helper()
	m := scrape(t, ctx, srv)
	s := snapshot{at: time.Now(), m: m, self: procstat.SelfCPU()}
	var err error
	if s.proc, err = procstat.Read(srv.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if s.idle, err = procstat.MachineIdle(); err != nil {
		t.Fatal(err)
	}
	for i, pid := range []string{strconv.Itoa(srv.cmd.Process.Pid), "self"} {
		if s.drops[i], err = procstat.UDPDrops(pid); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range parts {
		st := p.c.Stats()
		s.audio = append(s.audio, st.AudioPackets)
		s.video = append(s.video, st.VideoPackets)
	}
	return s
}

func scrape(t *testing.T, ctx context.Context, srv *server) metrics {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := srv.metrics(ctx)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return m
}

// results are the window's figures; CPU times are in seconds.
type results struct {
	secs                        float64
	outPkts, outAudio, outVideo float64
	inPkts, outBytes            float64
	cpu, usPerPkt               float64
	procCPU, procUser, procSys  float64
	switches                    float64
	harness, machBusy, other    float64
	rss, rssStart, rssIdle      float64
	rssPerTrack, heapInuse      float64
	live, liveIdle, stacks      float64
	subscribed                  float64
	goroutines, goroutinesIdle  float64
	mallocsPerPkt               float64
	allocBytesPerPkt            float64
	gcs, dropped, nacks, pli    float64
	paused, switchesLayer       float64
	fwdLatency                  float64 // mean, seconds
	estimates, estimateMean     float64
	estimatesLow                float64 // share of estimates <= 400 kbit/s
}

func result(idle metrics, b, a snapshot) results {
	d := func(name string, match ...string) float64 { return a.m.sum(name, match...) - b.m.sum(name, match...) }
	const pkts = "helpcaster_sfu_rtp_packets_total"
	r := results{
		secs:           a.at.Sub(b.at).Seconds(),
		outPkts:        d(pkts, "direction", "out"),
		outAudio:       d(pkts, "direction", "out", "kind", "audio"),
		outVideo:       d(pkts, "direction", "out", "kind", "video"),
		inPkts:         d(pkts, "direction", "in"),
		outBytes:       d("helpcaster_sfu_rtp_bytes_total", "direction", "out"),
		cpu:            d("process_cpu_seconds_total"),
		procCPU:        (a.proc.CPU() - b.proc.CPU()).Seconds(),
		procUser:       (a.proc.User - b.proc.User).Seconds(),
		procSys:        (a.proc.Sys - b.proc.Sys).Seconds(),
		switches:       float64(a.proc.Switches - b.proc.Switches),
		harness:        (a.self - b.self).Seconds(),
		rss:            a.m.sum("process_resident_memory_bytes"),
		rssStart:       b.m.sum("process_resident_memory_bytes"),
		rssIdle:        idle.sum("process_resident_memory_bytes"),
		heapInuse:      a.m.sum("go_memstats_heap_inuse_bytes"),
		live:           liveHeap(a.m),
		liveIdle:       liveHeap(idle),
		stacks:         a.m.sum("go_memstats_stack_inuse_bytes"),
		subscribed:     a.m.sum("helpcaster_sfu_subscribed_tracks"),
		goroutines:     a.m.sum("go_goroutines"),
		goroutinesIdle: idle.sum("go_goroutines"),
		gcs:            d("go_gc_duration_seconds_count"),
		dropped:        d("helpcaster_sfu_rtp_dropped_total"),
		nacks:          d("helpcaster_sfu_nacks_received_total"),
		pli:            d("helpcaster_sfu_keyframe_requests_total"),
		paused:         d("helpcaster_sfu_video_paused_allocations_total"),
		switchesLayer:  d("helpcaster_sfu_layer_switches_total"),
	}
	const est = "helpcaster_sfu_subscriber_estimate_bps"
	if r.estimates = d(est + "_count"); r.estimates > 0 {
		r.estimateMean = d(est+"_sum") / r.estimates
		r.estimatesLow = d(est+"_bucket", "le", "400000") / r.estimates
	}
	if n := d("helpcaster_sfu_forward_latency_seconds_count"); n > 0 {
		r.fwdLatency = d("helpcaster_sfu_forward_latency_seconds_sum") / n
	}
	r.machBusy = float64(runtime.NumCPU())*r.secs - (a.idle - b.idle).Seconds()
	r.other = r.machBusy - r.procCPU - r.harness
	if r.outPkts > 0 {
		r.usPerPkt = 1e6 * r.cpu / r.outPkts
		r.mallocsPerPkt = d("go_memstats_mallocs_total") / r.outPkts
		r.allocBytesPerPkt = d("go_memstats_alloc_bytes_total") / r.outPkts
	}
	if r.subscribed > 0 {
		r.rssPerTrack = (r.rss - r.rssIdle) / r.subscribed
	}
	return r
}

// liveHeap estimates the heap that survived the last GC from the next GC's
// goal: goal = live × (1 + GOGC/100).
func liveHeap(m metrics) float64 {
	gogc := 100.0
	if s := m["go_gc_gogc_percent"]; len(s) == 1 && s[0].value > 0 {
		gogc = s[0].value
	}
	return m.sum("go_memstats_next_gc_bytes") / (1 + gogc/100)
}

// closeAll closes every client at once and waits up to 30s for them.
func closeAll(t *testing.T, parts []*participant) {
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.c.Close()
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Errorf("clients still closing after 30s")
	}
}

func minMax(v []float64) (lo, hi float64) {
	for i, x := range v {
		if i == 0 || x < lo {
			lo = x
		}
		if i == 0 || x > hi {
			hi = x
		}
	}
	return lo, hi
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1000 {
		t.Fatalf("%s=%q: want a number from 1 to 1000", name, s)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second || d > 10*time.Minute {
		t.Fatalf("%s=%q: want a duration from 1s to 10m", name, s)
	}
	return d
}
