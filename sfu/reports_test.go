package sfu

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestNTP(t *testing.T) {
	if got, want := toNTP(time.Unix(0, 0)), uint64(ntpEpochOffset)<<32; got != want {
		t.Errorf("toNTP(epoch) = %#x, want %#x", got, want)
	}
	half := toNTP(time.Unix(10, int64(500*time.Millisecond)))
	if half&0xffffffff != 0x80000000 || half>>32 != ntpEpochOffset+10 {
		t.Errorf("toNTP(10.5 s) = %#x", half)
	}
	base := time.Unix(1_700_000_000, 123_000_000)
	for _, d := range []time.Duration{0, time.Millisecond, 1500 * time.Millisecond, 3 * time.Hour} {
		got, want := ntpAdd(toNTP(base), d), toNTP(base.Add(d))
		if diff := int64(got - want); diff < -2 || diff > 2 { // rounding of the fraction
			t.Errorf("ntpAdd(+%v) = %#x, want %#x", d, got, want)
		}
	}
}

// reportTrack is a bound, connected video down track forwarding layer 0
// of a track whose layer carries si as its publisher's last report.
func reportTrack(t *testing.T, si *senderInfo) (*downTrack, *metrics) {
	t.Helper()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	src := &publishedTrack{kind: "video", mime: mimeVP8}
	l := &layer{track: src}
	if si != nil {
		l.sr.Store(si)
	}
	src.layers[0].Store(l)
	d := &downTrack{src: src, kind: webrtc.RTPCodecTypeVideo, clockRate: 90000, bound: true, connected: true,
		ssrc: 77, current: 0, sentPackets: 10, sentOctets: 12000}
	d.ts.start(1000, 51000) // out = in + 50000
	return d, m
}

// TestSenderReportFromPublisher: a down track's report carries the
// publisher's NTP clock and the publisher's RTP time moved by the rewrite
// offset, extrapolated to now.
func TestSenderReportFromPublisher(t *testing.T) {
	arrived := time.Unix(1_700_000_000, 0)
	pubNTP := toNTP(arrived.Add(time.Hour)) // the publisher's clock is an hour ahead
	d, _ := reportTrack(t, &senderInfo{ntp: pubNTP, rtp: 9000, at: arrived})

	sr := d.senderReport(arrived.Add(500 * time.Millisecond))
	if sr == nil {
		t.Fatal("no report")
	}
	if got, want := sr.NTPTime, ntpAdd(pubNTP, 500*time.Millisecond); got != want {
		t.Errorf("NTP = %#x, want %#x (publisher's clock + 0.5 s)", got, want)
	}
	if got, want := sr.RTPTime, uint32(9000+50000+45000); got != want {
		t.Errorf("RTP = %d, want %d", got, want)
	}
	if sr.SSRC != 77 || sr.PacketCount != 10 || sr.OctetCount != 12000 {
		t.Errorf("report = %+v", sr)
	}
}

// TestSenderReportFallback: without a fresh publisher report the down track
// describes its own last frame in the SFU's clock.
func TestSenderReportFallback(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	d, _ := reportTrack(t, &senderInfo{ntp: 1, rtp: 1, at: now.Add(-time.Minute)}) // stale
	d.lastFwd, d.lastFwdTS = now.Add(-100*time.Millisecond), 4242
	sr := d.senderReport(now)
	if sr == nil {
		t.Fatal("no report")
	}
	if sr.NTPTime != toNTP(now) || sr.RTPTime != 4242+9000 {
		t.Errorf("report = NTP %#x RTP %d, want %#x, %d", sr.NTPTime, sr.RTPTime, toNTP(now), 4242+9000)
	}
	d.sentPackets = 0
	if d.senderReport(now) != nil {
		t.Error("report for a track that sent nothing")
	}
}

// TestReceiverReportRTT: the round trip is measured against when our report
// was sent, whatever NTP clock it was written in.
func TestReceiverReportRTT(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	d, m := reportTrack(t, &senderInfo{ntp: toNTP(now.Add(5 * time.Hour)), rtp: 0, at: now})
	sr := d.senderReport(now)
	rr := rtcp.ReceptionReport{SSRC: 77, FractionLost: 64, Jitter: 900,
		LastSenderReport: uint32(sr.NTPTime >> 16), Delay: 65536 / 10} // held 100 ms
	d.receiverReport(rr, now.Add(150*time.Millisecond), m)
	got := histogramSum(t, m.rtt.WithLabelValues("video"))
	if math.Abs(got-0.05) > 0.001 {
		t.Errorf("rtt = %.4f s, want 0.050", got)
	}
	if got := histogramSum(t, m.loss.WithLabelValues("video")); got != 0.25 {
		t.Errorf("loss = %v, want 0.25", got)
	}
	if got := histogramSum(t, m.jitter.WithLabelValues("video")); math.Abs(got-0.01) > 1e-9 {
		t.Errorf("jitter = %v s, want 0.01", got)
	}
	// A report about another sender report gives no round trip.
	rr.LastSenderReport++
	d.receiverReport(rr, now.Add(time.Second), m)
	if got := histogramSum(t, m.rtt.WithLabelValues("video")); math.Abs(got-0.05) > 0.001 {
		t.Errorf("rtt sum changed to %v on an unknown report", got)
	}
}

// TestSenderReportsEndToEnd: a publisher whose clock runs an hour ahead
// sends reports; the subscriber's reports from the SFU carry that clock and
// an RTP time that matches the packets it receives.
func TestSenderReportsEndToEnd(t *testing.T) {
	_, room, ctx := newTestRoom(t, Config{LoopbackOnly: true}, "reports")
	ahead := time.Hour
	srf, err := report.NewSenderInterceptor(report.SenderNow(func() time.Time { return time.Now().Add(ahead) }),
		report.SenderInterval(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	pubAPI := apiWith(t, false, srf)

	pub, _ := join(t, ctx, room, "publisher", pubAPI)
	_, sub := join(t, ctx, room, "subscriber", testAPI(t))

	type obs struct {
		at  time.Time
		ntp time.Time
		rtp uint32
	}
	var mu sync.Mutex
	var lastPkt obs // last RTP packet: arrival and timestamp
	var reports []obs
	sub.pc.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		go func() {
			buf := make([]byte, 1500)
			for {
				n, _, err := recv.Read(buf)
				if err != nil {
					return
				}
				pkts, err := rtcp.Unmarshal(buf[:n])
				if err != nil {
					continue
				}
				for _, p := range pkts {
					if sr, ok := p.(*rtcp.SenderReport); ok {
						secs := int64(sr.NTPTime>>32) - ntpEpochOffset
						frac := int64((sr.NTPTime & 0xffffffff) * uint64(time.Second) >> 32)
						mu.Lock()
						reports = append(reports, obs{at: time.Now(), ntp: time.Unix(secs, frac), rtp: sr.RTPTime})
						mu.Unlock()
					}
				}
			}
		}()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			mu.Lock()
			lastPkt = obs{at: time.Now(), rtp: p.Timestamp}
			mu.Unlock()
		}
	})

	sendSimulcast(t, ctx, pub, [maxLayers]int{8, 16, 32})

	waitFor(t, ctx, "three sender reports at the subscriber", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reports) >= 3
	})
	mu.Lock()
	last, pkt := reports[len(reports)-1], lastPkt
	mu.Unlock()
	if skew := last.ntp.Sub(last.at) - ahead; skew < -2*time.Second || skew > 2*time.Second {
		t.Errorf("report NTP time is %v from the publisher's clock, want within 2 s", skew)
	}
	// The report's RTP time, moved to when the last packet arrived, should
	// be that packet's timestamp give or take a few frames.
	expect := int64(last.rtp) + int64(pkt.at.Sub(last.at).Seconds()*90000)
	if d := int64(int32(uint32(expect) - pkt.rtp)); d < -4*3000 || d > 4*3000 {
		t.Errorf("report RTP time is %d ticks from the packets (%.1f frames)", d, float64(d)/3000)
	}
}

func histogramSum(t *testing.T, o prometheus.Observer) float64 {
	t.Helper()
	h, ok := o.(interface{ Write(*dto.Metric) error })
	if !ok {
		t.Fatal("not a histogram")
	}
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleSum()
}
