package sfu_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/helpcaster/helpcaster/internal/procstat"
	"github.com/helpcaster/helpcaster/sfu"
)

const runBroadcastCost = "HELPCASTER_BENCH=1 HELPCASTER_BENCH_SUBSCRIBERS=50 " +
	"go test -run TestBroadcastCost -v -count=1 -timeout 10m ./sfu"

// broadcastChildEnv marks the re-executed test binary that runs the
// subscribers of TestBroadcastCost.
const broadcastChildEnv = "HELPCASTER_BENCH_BROADCAST_CHILD"

// The synthetic publisher: one VP8 track of about 1.3 Mbit/s of payload
// (about 1.35 Mbit/s on the wire).
const (
	bcPacketsPerSec = 130
	bcPayload       = 1200 // bytes of RTP payload per packet
	bcFPS           = 30
	bcKeyEvery      = 30 // frames
)

// bcMsg is one JSON line between the parent (SFU and publisher) and the
// child (subscribers) of TestBroadcastCost.
type bcMsg struct {
	Type      string                   `json:"type"` // offer, answer, candidate, video, stats, counts
	ID        int                      `json:"id,omitempty"`
	SDP       string                   `json:"sdp,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	Counts    []uint64                 `json:"counts,omitempty"`
}

// bcAPI is a loopback-only (UDP4) pion API with the default codecs and
// interceptors (NACK, receiver reports, TWCC feedback), as a browser has.
func bcAPI() (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, err
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// TestBroadcastCost measures the SFU's CPU per forwarded packet with one
// publisher (a synthetic ~1.3 Mbit/s VP8 track, 130 packets/s) and N
// subscribers on loopback. This process runs the SFU and the publisher (an
// in-process pion peer); the N subscriber peer connections run in a child
// process (this test binary re-executed as TestBroadcastSubscribers), which
// exchanges SDP and ICE candidates with this one as JSON lines over its
// stdin and stdout, so this process's CPU is the server's plus the
// publisher's. A window with no subscribers measures the latter (plus the
// SFU's ingress work), reported separately.
//
// Environment: HELPCASTER_BENCH=1 runs it; HELPCASTER_BENCH_SUBSCRIBERS (50),
// HELPCASTER_BENCH_WINDOW (10s) and HELPCASTER_BENCH_WARMUP (5s) shape it;
// HELPCASTER_BENCH_BATCH=1 turns on the SFU's batched writes.
func TestBroadcastCost(t *testing.T) {
	if os.Getenv("HELPCASTER_BENCH") != "1" || os.Getenv(broadcastChildEnv) != "" {
		t.Skip("load measurement, run by hand: " + runBroadcastCost)
	}
	n := envCount(t, "HELPCASTER_BENCH_SUBSCRIBERS", 50)
	window := envSpan(t, "HELPCASTER_BENCH_WINDOW", 10*time.Second)
	warmup := envSpan(t, "HELPCASTER_BENCH_WARMUP", 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+2*window+warmup+time.Duration(n)*time.Second)
	t.Cleanup(cancel)

	reg := prometheus.NewRegistry()
	batch := os.Getenv("HELPCASTER_BENCH_BATCH") == "1"
	s, err := sfu.New(sfu.Config{LoopbackOnly: true, Registerer: reg, BatchWrites: batch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	room, err := s.Room("broadcast")
	if err != nil {
		t.Fatal(err)
	}
	api, err := bcAPI()
	if err != nil {
		t.Fatal(err)
	}

	// The publisher.
	track := publish(t, ctx, room, api)
	sendCtx, stopSend := context.WithCancel(ctx)
	sendDone := make(chan struct{})
	go func() { defer close(sendDone); sendVP8(sendCtx, track) }()
	t.Cleanup(func() { stopSend(); <-sendDone })
	for packetsTotal(t, reg, "in") == 0 {
		if ctx.Err() != nil {
			t.Fatal("the SFU received no packet from the publisher")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	base := measure(t, reg, nil, 5*time.Second)
	t.Logf("no subscribers (publisher sending + SFU receiving), 5 s: %.1f%% of a core, %.0f packets in/s, %.1f µs per ingress packet",
		base.cpuPct(), base.inRate(), base.usPerIn())

	// The subscribers' process.
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestBroadcastSubscribers$", "-test.timeout=30m")
	child.Env = append(os.Environ(), broadcastChildEnv+"=1", "HELPCASTER_BENCH_SUBSCRIBERS="+fmt.Sprint(n))
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	childDone := make(chan struct{})
	go func() { _ = child.Wait(); close(childDone) }()
	readerDone := make(chan struct{}) // closed when the child's output ends
	t.Cleanup(func() {
		stdin.Close() // the child closes its peers and exits
		select {
		case <-childDone:
		case <-time.After(10 * time.Second):
			_ = child.Process.Kill()
			<-childDone
		}
		<-readerDone
	})

	// Signals to the child go through one writer goroutine: the SFU calls
	// onSignal with its locks held.
	toChild := make(chan bcMsg, 64*n+256)
	var sendErr atomic.Value
	var sendMu sync.Mutex
	sendClosed := false
	send := func(m bcMsg) {
		sendMu.Lock()
		defer sendMu.Unlock()
		if sendClosed {
			return
		}
		select {
		case toChild <- m:
		default:
			sendErr.Store("queue to the child full")
		}
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		enc := json.NewEncoder(stdin)
		for m := range toChild {
			if err := enc.Encode(m); err != nil {
				sendErr.Store(err.Error())
				return
			}
		}
	}()
	// Runs after every subscriber's participant has closed (cleanups run
	// last registered first).
	t.Cleanup(func() {
		sendMu.Lock()
		sendClosed = true
		close(toChild)
		sendMu.Unlock()
		<-writerDone
	})

	// The reader looks subscribers up as the test goroutine adds them: a
	// subscriber's answer can come back before Join has returned.
	parts := make([]*sfu.Participant, n)
	var partsMu sync.Mutex
	partOf := func(i int) *sfu.Participant {
		partsMu.Lock()
		defer partsMu.Unlock()
		return parts[i]
	}
	video := make(chan int, n)
	counts := make(chan []uint64, 1)
	go func() { // the child's answers, candidates and reports
		defer close(readerDone)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			var m bcMsg
			if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &m) != nil {
				t.Logf("child: %s", line)
				continue
			}
			switch m.Type {
			case "answer", "candidate":
				if m.ID < 0 || m.ID >= n {
					t.Errorf("child: bad subscriber id %d", m.ID)
					continue
				}
				part := partOf(m.ID)
				for wait := 0; part == nil && wait < 5000; wait++ {
					time.Sleep(time.Millisecond) // Join has sent the offer but not returned yet
					part = partOf(m.ID)
				}
				if part == nil {
					t.Errorf("child: %s for subscriber %d, which never joined", m.Type, m.ID)
					continue
				}
				var err error
				if m.Type == "answer" {
					err = part.Answer(m.SDP)
				} else {
					err = part.AddCandidate(sfu.PCSub, *m.Candidate)
				}
				if err != nil && !errors.Is(err, sfu.ErrClosed) {
					t.Errorf("subscriber %d: %s: %v", m.ID, m.Type, err)
				}
			case "video":
				select {
				case video <- m.ID:
				default:
				}
			case "counts":
				select {
				case counts <- m.Counts:
				default: // nobody is waiting any more
				}
			}
		}
	}()
	for i := range n {
		part, err := room.Join(fmt.Sprintf("sub%d", i), func(sig sfu.Signal) {
			switch {
			case sig.PC != sfu.PCSub:
			case sig.Offer != "":
				send(bcMsg{Type: "offer", ID: i, SDP: sig.Offer})
			case sig.Candidate != nil:
				send(bcMsg{Type: "candidate", ID: i, Candidate: sig.Candidate})
			case sig.Failed:
				t.Errorf("subscriber %d: connection failed", i)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		partsMu.Lock()
		parts[i] = part
		partsMu.Unlock()
		t.Cleanup(part.Close)
	}
	start := time.Now()
	for got := 0; got < n; got++ {
		select {
		case <-video:
		case <-childDone:
			t.Fatalf("the child exited with %d of %d subscribers receiving video", got, n)
		case <-ctx.Done():
			t.Fatalf("%d of %d subscribers received video before the deadline (%v)", got, n, sendErr.Load())
		}
	}
	t.Logf("all %d subscribers receive video %.1f s after joining", n, time.Since(start).Seconds())
	time.Sleep(warmup)

	askCounts := func() []uint64 {
		send(bcMsg{Type: "stats"})
		select {
		case c := <-counts:
			return c
		case <-ctx.Done():
			t.Fatal("no counts from the child")
		case <-childDone:
			t.Fatal("the child exited")
		}
		return nil
	}
	c0 := askCounts()
	m := measure(t, reg, child.Process, window)
	c1 := askCounts()
	if e := sendErr.Load(); e != nil {
		t.Fatal(e)
	}
	var got []uint64
	for i := range n {
		got = append(got, c1[i]-c0[i])
		if c1[i] == c0[i] {
			t.Errorf("subscriber %d received no packet in the window", i)
		}
	}
	slices.Sort(got)
	sub := m.cpu - time.Duration(float64(base.cpu)*float64(m.wall)/float64(base.wall))
	t.Logf("subscribers' packets in the window: min %d, median %d, max %d", got[0], got[n/2], got[n-1])
	t.Logf("window %.1f s: %.0f packets in/s, %.0f out/s (%.1f per ingress), %.2f Mbit/s payload out",
		m.wall.Seconds(), m.inRate(), m.outRate(), m.outRate()/m.inRate(), m.outBytes*8/m.wall.Seconds()/1e6)
	t.Logf("server process: %.1f%% of a core (/proc: %.1f%%), %.2f ctx switches / forwarded pkt; child (subscribers): %.1f%% of a core",
		m.cpuPct(), 100*m.procCPU.Seconds()/m.wall.Seconds(), float64(m.switches)/m.out, 100*m.childCPU.Seconds()/m.wall.Seconds())
	logEstimates(t, reg)
	logLatency(t, reg)
	t.Logf("UDP receive drops in the window: server %d, child %d", m.drops, m.childDrops)
	t.Logf("RESULT subscribers=%d µs/forwarded pkt=%.2f (minus no-subscriber baseline %.2f) server%%=%.1f baseline%%=%.1f ctxsw/pkt=%.2f child%%=%.1f out/s=%.0f",
		n, m.usPerOut(), sub.Seconds()*1e6/m.out, m.cpuPct(), base.cpuPct(), float64(m.switches)/m.out,
		100*m.childCPU.Seconds()/m.wall.Seconds(), m.outRate())
}

// bcWindow is what measure saw in one window.
type bcWindow struct {
	wall, cpu, childCPU time.Duration
	procCPU             time.Duration // this process's utime+stime from /proc, a cross-check of cpu
	in, out, outBytes   float64
	switches            int64
	drops, childDrops   int64
}

func (w bcWindow) cpuPct() float64   { return 100 * w.cpu.Seconds() / w.wall.Seconds() }
func (w bcWindow) inRate() float64   { return w.in / w.wall.Seconds() }
func (w bcWindow) outRate() float64  { return w.out / w.wall.Seconds() }
func (w bcWindow) usPerIn() float64  { return w.cpu.Seconds() * 1e6 / w.in }
func (w bcWindow) usPerOut() float64 { return w.cpu.Seconds() * 1e6 / w.out }

// measure samples this process's CPU and context switches, the SFU's
// packet counters and, when child is set, the child's CPU over d.
func measure(t *testing.T, reg *prometheus.Registry, child *os.Process, d time.Duration) bcWindow {
	t.Helper()
	self := os.Getpid()
	snap := func() (w bcWindow) {
		p, err := procstat.Read(self)
		if err != nil {
			t.Fatal(err)
		}
		w.switches, w.procCPU = p.Switches, p.CPU()
		w.drops, _ = procstat.UDPDrops("self")
		if child != nil {
			cp, err := procstat.Read(child.Pid)
			if err != nil {
				t.Fatal(err)
			}
			w.childCPU = cp.CPU()
			w.childDrops, _ = procstat.UDPDrops(fmt.Sprint(child.Pid))
		}
		w.in, w.out, w.outBytes = packetsTotal(t, reg, "in"), packetsTotal(t, reg, "out"), bytesOut(t, reg)
		w.cpu, w.wall = procstat.SelfCPU(), time.Duration(time.Now().UnixNano())
		return w
	}
	a := snap()
	time.Sleep(d)
	b := snap()
	return bcWindow{
		wall: b.wall - a.wall, cpu: b.cpu - a.cpu, childCPU: b.childCPU - a.childCPU, procCPU: b.procCPU - a.procCPU,
		in: b.in - a.in, out: b.out - a.out, outBytes: b.outBytes - a.outBytes,
		switches: b.switches - a.switches, drops: b.drops - a.drops, childDrops: b.childDrops - a.childDrops,
	}
}

// logEstimates logs the share of the subscribers' bandwidth estimates (all
// samples since the start) at or under 800 kbit/s, too little for the video.
func logEstimates(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "helpcaster_sfu_subscriber_estimate_bps" || len(f.GetMetric()) == 0 {
			continue
		}
		h := f.GetMetric()[0].GetHistogram()
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() == 800_000 && h.GetSampleCount() > 0 {
				t.Logf("subscribers' estimates: %.1f%% of %d samples at or under 800 kbit/s",
					100*float64(b.GetCumulativeCount())/float64(h.GetSampleCount()), h.GetSampleCount())
			}
		}
	}
}

// logLatency logs the SFU's forwarding latency (read to each egress write,
// sampled; all samples since the start): mean, and the bucket bounds that
// hold the median and the 99th percentile.
func logLatency(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "helpcaster_sfu_forward_latency_seconds" || len(f.GetMetric()) == 0 {
			continue
		}
		h := f.GetMetric()[0].GetHistogram()
		n := float64(h.GetSampleCount())
		if n == 0 {
			return
		}
		upTo := func(q float64) float64 {
			for _, b := range h.GetBucket() {
				if float64(b.GetCumulativeCount()) >= q*n {
					return b.GetUpperBound()
				}
			}
			return math.Inf(1)
		}
		t.Logf("forwarding latency (read to write): mean %.0f µs, median ≤ %.0f µs, p99 ≤ %.0f µs (%d samples)",
			1e6*h.GetSampleSum()/n, 1e6*upTo(0.5), 1e6*upTo(0.99), h.GetSampleCount())
	}
}

func packetsTotal(t *testing.T, reg *prometheus.Registry, dir string) float64 {
	return counterSum(t, reg, "helpcaster_sfu_rtp_packets_total", dir)
}

func bytesOut(t *testing.T, reg *prometheus.Registry) float64 {
	return counterSum(t, reg, "helpcaster_sfu_rtp_bytes_total", "out")
}

// counterSum adds up the counters of family name whose direction is dir.
func counterSum(t *testing.T, reg *prometheus.Registry, name, dir string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "direction" && l.GetValue() == dir {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// publish joins the publisher to room as an in-process pion peer with one
// VP8 track and returns the track once its offer is answered.
func publish(t *testing.T, ctx context.Context, room *sfu.Room, api *webrtc.API) *webrtc.TrackLocalStaticRTP {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	signals := make(chan sfu.Signal, 64)
	part, err := room.Join("publisher", func(s sfu.Signal) {
		select {
		case signals <- s:
		default:
			t.Errorf("publisher: signal queue full")
		}
	})
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	sigCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-sigCtx.Done():
				return
			case s := <-signals:
				if s.PC == sfu.PCPub && s.Candidate != nil {
					_ = pc.AddICECandidate(*s.Candidate)
				}
			}
		}
	}()
	t.Cleanup(func() { part.Close(); pc.Close(); stop(); wg.Wait() })
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			if err := part.AddCandidate(sfu.PCPub, c.ToJSON()); err != nil {
				t.Errorf("publisher: candidate: %v", err)
			}
		}
	})
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "cam")
	if err != nil {
		t.Fatal(err)
	}
	sender, err := pc.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	go func() { // consume RTCP so the sender's interceptors run
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	answer, err := part.Offer(offer.SDP)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	return track
}

// sendVP8 writes bcFPS frames a second, bcPacketsPerSec packets a second
// in all, each with bcPayload bytes of payload starting with a VP8 payload
// descriptor (picture id), until ctx ends. Every bcKeyEvery-th frame is a
// keyframe.
func sendVP8(ctx context.Context, track *webrtc.TrackLocalStaticRTP) {
	seq, ts, pid := uint16(rand.Uint32()), rand.Uint32(), uint16(rand.Uint32())&0x7fff
	payload := make([]byte, bcPayload)
	tick := time.NewTicker(time.Second / bcFPS)
	defer tick.Stop()
	for frame := 0; ; frame++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		packets := (frame+1)*bcPacketsPerSec/bcFPS - frame*bcPacketsPerSec/bcFPS
		for i := range packets {
			clear(payload)
			payload[0], payload[1], payload[2], payload[3] = 0x80, 0x80, 0x80|byte(pid>>8), byte(pid)
			if i == 0 {
				payload[0] |= 0x10 // S: start of partition 0
				if frame%bcKeyEvery == 0 {
					// Keyframe header: P bit clear, start code, 640x480.
					copy(payload[4:], []byte{0x00, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01})
				} else {
					payload[4] = 0x01
				}
			}
			err := track.WriteRTP(&rtp.Packet{
				Header:  rtp.Header{Version: 2, Marker: i == packets-1, SequenceNumber: seq, Timestamp: ts},
				Payload: payload,
			})
			if err != nil {
				return
			}
			seq++
		}
		ts += 90000 / bcFPS
		pid = (pid + 1) & 0x7fff
	}
}

// TestBroadcastSubscribers is the child process of TestBroadcastCost: it
// answers the SFU's offers for HELPCASTER_BENCH_SUBSCRIBERS subscriber
// connections, counts the RTP packets each receives, and exits when its
// stdin closes.
func TestBroadcastSubscribers(t *testing.T) {
	if os.Getenv(broadcastChildEnv) == "" {
		t.Skip("the subscribers' process of TestBroadcastCost")
	}
	n := envCount(t, "HELPCASTER_BENCH_SUBSCRIBERS", 50)
	api, err := bcAPI()
	if err != nil {
		t.Fatal(err)
	}
	var outMu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	emit := func(m bcMsg) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = enc.Encode(m)
	}
	counts := make([]atomic.Uint64, n)
	pcs := make([]*webrtc.PeerConnection, n)
	pending := make([][]webrtc.ICECandidateInit, n)
	var wg sync.WaitGroup
	var trackMu sync.Mutex
	closing := false // set before wg.Wait: no track reader starts after it
	defer func() {
		trackMu.Lock()
		closing = true
		trackMu.Unlock()
		for _, pc := range pcs {
			if pc != nil {
				pc.Close()
			}
		}
		wg.Wait()
	}()
	newPC := func(id int) (*webrtc.PeerConnection, error) {
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			return nil, err
		}
		pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			if c != nil {
				init := c.ToJSON()
				emit(bcMsg{Type: "candidate", ID: id, Candidate: &init})
			}
		})
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			trackMu.Lock()
			if closing {
				trackMu.Unlock()
				return
			}
			wg.Add(1)
			trackMu.Unlock()
			defer wg.Done()
			buf := make([]byte, 1500)
			for {
				if _, _, err := tr.Read(buf); err != nil {
					return
				}
				if counts[id].Add(1) == 1 && tr.Kind() == webrtc.RTPCodecTypeVideo {
					emit(bcMsg{Type: "video", ID: id})
				}
			}
		})
		return pc, nil
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m bcMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("bad message %q: %v", sc.Bytes(), err)
		}
		if m.Type != "stats" && (m.ID < 0 || m.ID >= n) {
			t.Fatalf("bad id in %q", sc.Bytes())
		}
		switch m.Type {
		case "stats":
			c := make([]uint64, n)
			for i := range counts {
				c[i] = counts[i].Load()
			}
			emit(bcMsg{Type: "counts", Counts: c})
		case "candidate":
			if pcs[m.ID] == nil || pcs[m.ID].RemoteDescription() == nil {
				pending[m.ID] = append(pending[m.ID], *m.Candidate)
				continue
			}
			_ = pcs[m.ID].AddICECandidate(*m.Candidate)
		case "offer":
			if pcs[m.ID] == nil {
				if pcs[m.ID], err = newPC(m.ID); err != nil {
					t.Fatal(err)
				}
			}
			pc := pcs[m.ID]
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
				t.Fatal(err)
			}
			answer, err := pc.CreateAnswer(nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := pc.SetLocalDescription(answer); err != nil {
				t.Fatal(err)
			}
			emit(bcMsg{Type: "answer", ID: m.ID, SDP: answer.SDP})
			for _, c := range pending[m.ID] {
				_ = pc.AddICECandidate(c)
			}
			pending[m.ID] = nil
		}
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		t.Fatal(err)
	}
}

// envCount reads the environment variable name as a count from 1 to 1000;
// def when it is unset.
func envCount(t *testing.T, name string, def int) int {
	t.Helper()
	n, err := strconv.Atoi(cmp.Or(os.Getenv(name), strconv.Itoa(def)))
	if err != nil || n < 1 || n > 1000 {
		t.Fatalf("%s=%q: want a number from 1 to 1000", name, os.Getenv(name))
	}
	return n
}

// envSpan reads the environment variable name as a duration from 1s to
// 10m; def when it is unset.
func envSpan(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(cmp.Or(os.Getenv(name), def.String()))
	if err != nil || d < time.Second || d > 10*time.Minute {
		t.Fatalf("%s=%q: want a duration from 1s to 10m", name, os.Getenv(name))
	}
	return d
}
