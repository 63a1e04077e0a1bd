package sfu

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	dto "github.com/prometheus/client_model/go"
)

// linkLimiter is a receive-side interceptor standing in for a narrow link:
// it drops incoming RTP beyond a rate (token bucket), before the receiver's
// transport-wide feedback sees it, so the sender's estimator sees the loss a
// real bottleneck would cause. A limit of 0 lets everything through.
type linkLimiter struct {
	interceptor.NoOp
	limit atomic.Int64 // bits per second

	mu     sync.Mutex
	tokens float64 // bits
	last   time.Time
}

func (l *linkLimiter) NewInterceptor(string) (interceptor.Interceptor, error) { return l, nil }

func (l *linkLimiter) allow(n int) bool {
	limit := l.limit.Load()
	if limit <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !l.last.IsZero() {
		l.tokens += now.Sub(l.last).Seconds() * float64(limit)
	}
	l.last = now
	if burst := float64(limit) / 10; l.tokens > burst { // 100 ms of burst
		l.tokens = burst
	}
	bits := float64(n * 8)
	if l.tokens < bits {
		return false
	}
	l.tokens -= bits
	return true
}

func (l *linkLimiter) BindRemoteStream(_ *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attr, err := r.Read(b, a)
			if err != nil || l.allow(n) {
				return n, attr, err
			}
		}
	})
}

// TestCongestionMovesLayers: a subscriber behind a narrowing link drops to
// a lower layer and climbs back when the link widens; a subscriber on a good
// link is on the top layer at the end, and every switch either makes is
// clean. (The good link's estimator reads delay, and a machine starved of
// CPU delays packets too: there it may step down for a moment, which says
// nothing of the other subscriber's link, so that is logged, not failed.)
func TestCongestionMovesLayers(t *testing.T) {
	_, room, ctx := newTestRoom(t, Config{LoopbackOnly: true}, "congestion")
	var link linkLimiter
	pub, _ := join(t, ctx, room, "publisher", testAPI(t))
	_, narrow := join(t, ctx, room, "narrow", apiWith(t, true, &link))
	_, wide := join(t, ctx, room, "wide", testAPI(t))
	var a, b collector
	a.attach(narrow)
	b.attach(wide)

	sendSimulcast(t, ctx, pub, [maxLayers]int{40, 140, 400}) // about 60, 150 and 400 kbit/s

	waitLayer(t, ctx, "narrow", &a, layerFull)
	waitLayer(t, ctx, "wide", &b, layerFull)
	b.reset() // from here on the wide subscriber should stay on the top layer

	link.limit.Store(220_000) // room for the middle layer, not the top
	waitFor(t, ctx, "narrow moves below the top layer", func() bool { l := a.lastLayer(); return l != layerFull && l != layerNone })
	t.Logf("narrow link: moved to layer %d", a.lastLayer())

	link.limit.Store(0) // the link recovers
	a.reset()
	waitLayer(t, ctx, "narrow (recovered)", &a, layerFull)

	checkStream(t, "narrow after recovery", a.snapshot(), false)
	waitLayer(t, ctx, "wide (at the end)", &b, layerFull)
	if got := checkStream(t, "wide", b.snapshot(), false); len(got) != 1 || got[0] != layerFull {
		t.Logf("wide saw layers %v while the narrow link was congested (a busy machine's delay)", got)
	}
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out: %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestProbingClimbs: a subscriber whose estimate starts below its top layer
// reaches that layer. Its estimate cannot grow on the lower layers' traffic
// alone (the estimator stays near what it has seen delivered), so only
// probe clusters get it there.
func TestProbingClimbs(t *testing.T) {
	s, room, ctx := newTestRoom(t, Config{LoopbackOnly: true, InitialEstimate: 300_000}, "probing")
	pub, _ := join(t, ctx, room, "publisher", testAPI(t))
	_, sub := join(t, ctx, room, "subscriber", testAPI(t))
	var c collector
	c.attach(sub)

	sendSimulcast(t, ctx, pub, [maxLayers]int{40, 140, 1100}) // about 40, 135 and 1060 kbit/s

	// Until the first allocation it forwards what it is asked for; the
	// 300 kbit/s estimate then moves it down.
	waitFor(t, ctx, "the subscriber goes below the top layer", func() bool { l := c.lastLayer(); return l != layerNone && l != layerFull })
	c.reset()
	waitLayer(t, ctx, "subscriber", &c, layerFull)
	if n := testCounter(s.metrics.probePackets.(interface{ Write(*dto.Metric) error })); n == 0 {
		t.Error("reached the top layer without probing")
	}
	checkStream(t, "subscriber after probing", c.snapshot(), false)
}
