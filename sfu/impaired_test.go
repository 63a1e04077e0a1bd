package sfu

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	dto "github.com/prometheus/client_model/go"
)

// A one-to-one call over bad links, impaired at the UDP level (see
// impairnet_test.go): the publisher's uplink and the subscriber's downlink
// each lose 3% of the RTP and RTCP datagrams, send 5% late (after up to 5
// later ones) and 1% twice, the copy up to 5 datagrams late. That is a
// poor but usable mobile link: enough loss that NACK and RTX run all the
// time (several losses a second each way), reordering deep enough to reach
// past one frame's packets, and duplicates that only the receiver's SRTP
// replay window can take out. The SFU never sees clean input: every
// datagram it decrypts has been through the uplink, and what it sends goes
// through the downlink. Both ways are impaired so that the SFU's ingress
// (replay window, rollover counter, late packets into the packet cache,
// NACKs to the publisher) and its egress (NACKs from the subscriber, RTX
// out) are exercised in one call.
//
// The publisher sends one VP8 track (synthetic frames: a keyframe every
// second and on request, 4 packets a delta frame, 8 a keyframe, about
// 600 kbit/s) and one Opus track, each packet's payload made from its
// index so the subscriber can tell which packet it got and that it is
// intact. It writes its own RTP, so it chooses the sequence numbers: one
// case starts them mid-range; the other just below 65535 so that they wrap
// in the measured span, starts the subscriber's (the SFU's own) just below
// 65535 too so that they wrap a second apart, and forces losses,
// reordering and duplicates right at both wraps (aroundWrap).
//
// What must hold whatever the machine's load:
//   - the call comes up and the subscriber receives both tracks;
//   - every video packet of the measured span (from the first sent at
//     full rate, after the subscriber's first packet) reaches the
//     subscriber's application at least once, after NACK and RTX on both
//     hops;
//   - every packet received carries exactly the payload sent under its
//     index, and its sequence number and timestamp are the publisher's
//     moved by one constant offset each (no switch, no padding: the
//     rewriting must be the identity but for the offsets), across the wraps;
//   - on the subscriber's media SSRCs the SFU sends each sequence number
//     once, except a video packet the publisher retransmitted, at most
//     twice (retransmissions to the subscriber go on RTX): duplicates and
//     replays on the uplink are taken out at ingress;
//   - an audio packet (no NACK for Opus) is missing at the subscriber only
//     where one of the two links dropped it;
//   - the links did impair (counts), the SFU asked the publisher for
//     retransmissions and got them, and answered the subscriber's NACKs;
//     the SFU counted no malformed packet.
//
// The subscriber does not negotiate transport-wide feedback (see
// impairedAPI): with it, today's estimator reads the reordering as
// congestion and pauses the video, which is a judgement this test leaves
// to the congestion tests.
func TestImpairedCall(t *testing.T) {
	t.Run("sequence numbers mid-range", func(t *testing.T) { testImpairedCall(t, 11, false) })
	t.Run("sequence numbers wrap", func(t *testing.T) { testImpairedCall(t, 23, true) })
}

// Impairment each way (see above).
var impairedLink = impairProfile{loss: 0.03, reorder: 0.05, dup: 0.01, depth: 5, maxHold: 100 * time.Millisecond, maxHeld: 8}

const (
	// impairedSpan is how long the call runs at full rate, measured, after
	// the subscriber's first packet (then it goes on while the last losses
	// are repaired).
	impairedSpan = 6 * time.Second
	// announceEvery is how often the publisher sends a one-packet keyframe
	// (and an audio packet) until the subscriber receives the track: it
	// makes the SFU publish the track while using few sequence numbers, so
	// the wrap lands inside the measured span however long set-up takes.
	announceEvery = 100 * time.Millisecond
	// wrapStart puts the wrap of the publisher's video sequence numbers
	// about 3 s into the span: the announce phase uses about 10 numbers a
	// second, then about 120 a second.
	wrapStart = 65536 - 100 - 360
	// outWrapStart is where the SFU starts the subscriber's sequence
	// numbers in the wrap case, so that they too wrap in the span (about
	// 2.5 s in), apart from the publisher's.
	outWrapStart = 65536 - 300
)

// aroundWrap puts losses, reordering and a duplicate on both sides of a
// 65535 -> 0 wrap, where a late packet or a retransmission has to be
// placed in the previous cycle: the receiver's rollover counter guess, the
// replay window and the SFU's late-packet mapping all meet there.
var aroundWrap = map[uint16]forcedImpairment{
	65530: {hold: 5},    // arrives after the wrap
	65532: {drop: true}, // its retransmission comes after the wrap
	65534: {hold: 4, dup: 5},
	65535: {dup: 3},
	0:     {drop: true},
	1:     {hold: 2},
}

func testImpairedCall(t *testing.T, seed uint64, wrap bool) {
	s, room, ctx := newTestRoom(t, Config{LoopbackOnly: true}, "impaired")
	upProf, downProf := impairedLink, impairedLink
	upProf.seed, downProf.seed = seed, seed+1
	firstSeq := uint16(20000)
	if wrap {
		firstSeq = wrapStart
		upProf.forced, downProf.forced = aroundWrap, aroundWrap
	}
	up, down := newImpairer(upProf), newImpairer(downProf)
	t.Logf("seeds: uplink %d, downlink %d; first sequence number %d", upProf.seed, downProf.seed, firstSeq)

	resent := &rtxLog{osn: map[uint16]int{}}
	pub, _ := join(t, ctx, room, "publisher", impairedAPI(t, up, nil, resent))
	_, sub := join(t, ctx, room, "subscriber", impairedAPI(t, nil, down, nil))
	var video, audio trackLog
	sub.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			video.read(tr)
		} else {
			audio.read(tr)
		}
	})

	ps := publishImpaired(t, pub, firstSeq)
	sendCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); ps.run(sendCtx, &video) }()
	t.Cleanup(func() { stop(); <-done })

	for video.count() == 0 || audio.count() == 0 {
		if wrap {
			presetOutSeq(sub.part, outWrapStart)
		}
		select {
		case <-ctx.Done():
			t.Fatal("timed out: the subscriber receives video and audio")
		case <-time.After(2 * time.Millisecond):
		}
	}
	t.Logf("subscriber receiving after %v", time.Since(ps.started).Round(time.Millisecond))
	select {
	case <-ctx.Done():
		t.Fatal("timed out in the measured span")
	case <-time.After(impairedSpan):
	}
	vEnd, aEnd := ps.video.sentCount(), ps.audio.sentCount()

	// The sender goes on while the last losses are repaired, so the NACK
	// generators see the tail's losses and the links release what they
	// hold. Audio has no repair: a second is enough for its last packets.
	// Video: until nothing is missing, or the receiver's NACK window (512
	// packets, about 4 s here) has long passed the span.
	time.Sleep(time.Second)
	// The span starts with the first packet sent at full rate, after the
	// subscriber's first packet: the NACK generator cannot ask for anything
	// before that one, and the SFU does not forward a packet it read before
	// the subscriber's stream started even when it is newer than the
	// keyframe the stream started on (a start keyframe reordered behind it
	// on the uplink): a hole at the very start that the SFU cannot repair,
	// which set-up may hit but the span must not.
	vGo, aGo := ps.fullRateFrom()
	vStart := max(video.firstIndex()+1, vGo)
	var missing []uint32
	deadline := time.Now().Add(7 * time.Second)
	for {
		missing = video.missing(vStart, vEnd)
		if len(missing) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	<-done

	upStats, downStats := up.snapshot(), down.snapshot()
	t.Logf("uplink: %+v", upStats)
	t.Logf("downlink: %+v", downStats)
	span := int(vEnd) - int(vStart)
	t.Logf("video: span of %d packets (indexes %d-%d, %d sent in all), %d received (%d via RTX); audio: %d sent, %d received",
		span, vStart, vEnd-1, ps.video.sentCount(), video.count(), video.viaRTX(), ps.audio.sentCount(), audio.count())
	logSFUCounters(t, s)

	// The run exercised what it is for.
	for name, st := range map[string]impairStats{"uplink": upStats, "downlink": downStats} {
		if st.dropped < 10 || st.reordered < 10 || st.duplicated < 2 {
			t.Errorf("%s impaired too little to test anything: %+v", name, st)
		}
	}
	if span < int(impairedSpan.Seconds())*60 {
		t.Errorf("only %d video packets in the measured span", span)
	}
	if wrap {
		// The span must contain the wrap: index i went out as firstSeq+i.
		wrapIndex := uint32(65536 - int(firstSeq))
		if wrapIndex <= vStart || wrapIndex >= vEnd {
			t.Errorf("the sequence numbers wrapped at index %d, outside the measured span %d-%d (set-up too slow?)", wrapIndex, vStart, vEnd-1)
		} else {
			t.Logf("video sequence numbers wrapped at index %d", wrapIndex)
		}
	}

	vOff := checkReceived(t, "video", &video, ps.video)
	aOff := checkReceived(t, "audio", &audio, ps.audio)
	if wrap {
		// The SFU's own sequence numbers wrapped inside the span too.
		first, last := ps.video.sent(vStart).SequenceNumber-vOff.seq, ps.video.sent(vEnd-1).SequenceNumber-vOff.seq
		if last >= first {
			t.Errorf("the subscriber's video sequence numbers ran %d-%d in the span, no wrap (preset missed?)", first, last)
		} else {
			t.Logf("the subscriber's video sequence numbers wrapped: %d-%d", first, last)
		}
	}
	seen, downDropped := down.offered()
	upSeen, upDropped := up.offered()
	resentOSN, resentTotal := resent.snapshot()
	if len(missing) > 0 {
		t.Errorf("%d of %d video packets in the span never reached the subscriber: indexes %v", len(missing), span, head(missing, 20))
		// Where each was lost, for whoever debugs it.
		for _, i := range head(missing, 5) {
			in := ps.video.sent(i).SequenceNumber
			out := in - vOff.seq
			t.Logf("index %d (seq %d, out %d): uplink offered %d dropped %d, publisher retransmitted %d; SFU sent %d, downlink dropped %d",
				i, in, out, upSeen[rtpKey{ps.video.ssrc, in}], upDropped[rtpKey{ps.video.ssrc, in}], resentOSN[in],
				seen[rtpKey{video.ssrcNow(), out}], downDropped[rtpKey{video.ssrcNow(), out}])
		}
	}

	checkForwardedOnce(t, seen, resentOSN, []forwardedTrack{{&video, vOff, true}, {&audio, aOff, false}})
	t.Logf("publisher: %d retransmissions of %d packets", resentTotal, len(resentOSN))
	checkAudioLoss(t, &audio, ps.audio, aOff, max(audio.firstIndex()+1, aGo), aEnd, upDropped, downDropped)

	// NACK and RTX ran on both hops.
	if resentTotal == 0 {
		t.Error("the publisher sent no retransmissions: the SFU did not NACK its losses")
	}
	if n := testCounter(s.metrics.nacksIn.(interface{ Write(*dto.Metric) error })); n == 0 {
		t.Error("the SFU counted no NACKs from the subscriber")
	}
	if n := testCounter(s.metrics.retransmitted.(interface{ Write(*dto.Metric) error })); n == 0 {
		t.Error("the SFU retransmitted nothing to the subscriber")
	}
	if video.viaRTX() == 0 {
		t.Error("the subscriber got no video packet by RTX")
	}
}

// forwardedTrack is one of the subscriber's tracks with the offsets the
// SFU applied to it; resendable if the publisher retransmits its packets.
type forwardedTrack struct {
	log        *trackLog
	off        offsets
	resendable bool
}

// checkForwardedOnce checks the SFU's egress on the subscriber's media
// SSRCs as it reached the subscriber's socket (seen: copies per packet):
// each sequence number once, but for a packet that the publisher
// retransmitted (resent, by publisher sequence number), at most twice. The
// SFU then got it as itself and by RTX (asked for while it was only late
// on the uplink) and forwards both. Anything more is a duplicate or a
// replay on the uplink that the SFU let through: the publisher's repeated
// retransmissions of one packet are identical SRTP datagrams (pion gives a
// packet its RTX sequence number once), so only the SRTP replay window
// stops them.
func checkForwardedOnce(t *testing.T, seen map[rtpKey]int, resent map[uint16]int, tracks []forwardedTrack) {
	t.Helper()
	for _, c := range tracks {
		ssrc := c.log.ssrcNow()
		var dups, late []uint16
		for k, n := range seen {
			if k.ssrc != ssrc || n < 2 {
				continue
			}
			if in := k.seq + c.off.seq; n == 2 && c.resendable && resent[in] > 0 {
				late = append(late, in)
			} else {
				dups = append(dups, in)
			}
		}
		if len(dups) > 0 {
			slices.Sort(dups)
			t.Errorf("%s: the SFU forwarded %d packets more than once (publisher sequence numbers): %v", c.log.kindNow(), len(dups), head(dups, 20))
		}
		if len(late) > 0 {
			t.Logf("%s: the SFU forwarded %d packets twice, each also retransmitted by the publisher", c.log.kindNow(), len(late))
		}
	}
}

// checkAudioLoss checks that the audio packets from index first up to end
// that the subscriber did not receive were dropped by the uplink (by
// publisher sequence number) or the downlink (by the subscriber's).
func checkAudioLoss(t *testing.T, got *trackLog, sent *sentLog, off offsets, first, end uint32, upDropped, downDropped map[rtpKey]int) {
	t.Helper()
	var unexplained []uint32
	for _, i := range got.missing(first, end) {
		in := sent.sent(i).SequenceNumber
		if upDropped[rtpKey{sent.ssrc, in}] == 0 && downDropped[rtpKey{got.ssrcNow(), in - off.seq}] == 0 {
			unexplained = append(unexplained, i)
		}
	}
	if len(unexplained) > 0 {
		t.Errorf("%d audio packets missing that neither link dropped: indexes %v", len(unexplained), head(unexplained, 20))
	}
}

func head[T any](s []T, n int) []T { return s[:min(len(s), n)] }

// impairedAPI builds a loopback-only pion API on an impaired network: up
// impairs what the peer sends, down what it receives (nil: clean). It has
// pion's default codecs, NACK (generator and responder) and RTCP reports,
// and first, when not nil, an interceptor that logs retransmissions.
//
// It does not negotiate transport-wide congestion control feedback, so the
// SFU's bandwidth estimate for a subscriber stays at its initial value:
// what this test checks is delivery, not the congestion controller, whose
// estimate a reordering link pulls well below a 600 kbit/s stream today
// (5% of datagrams late by a few packets: from 1.5 Mbit/s to about
// 400 kbit/s within half a second), and the allocator then pauses the
// only video track.
func impairedAPI(t *testing.T, up, down *impairer, first interceptor.Factory) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if first != nil {
		ir.Add(first)
	}
	if err := webrtc.ConfigureNack(me, ir); err != nil {
		t.Fatal(err)
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		t.Fatal(err)
	}
	n, err := newImpairedNet(up, down)
	if err != nil {
		t.Fatal(err)
	}
	se := loopbackSettings()
	se.SetNet(n)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// rtxLog is a sender-side interceptor that logs the retransmissions the
// peer's NACK responder writes on RTX streams, by original sequence number.
// Registered first, it wraps the innermost writer, so it sees what the
// responder writes.
type rtxLog struct {
	interceptor.NoOp
	mu    sync.Mutex
	osn   map[uint16]int // retransmissions per original sequence number
	total int
}

func (l *rtxLog) NewInterceptor(string) (interceptor.Interceptor, error) { return l, nil }

func (l *rtxLog) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	rtx := info.SSRCRetransmission
	if rtx == 0 {
		return w
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if h.SSRC == rtx && len(payload) >= 2 {
			l.mu.Lock()
			l.osn[binary.BigEndian.Uint16(payload)]++
			l.total++
			l.mu.Unlock()
		}
		return w.Write(h, payload, a)
	})
}

func (l *rtxLog) snapshot() (map[uint16]int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.osn), l.total
}

// logSFUCounters logs the SFU's packet, NACK and drop counters.
func logSFUCounters(t *testing.T, s *SFU) {
	t.Helper()
	m := s.metrics
	get := func(c interface{ Write(*dto.Metric) error }) float64 { return testCounter(c) }
	var drops []string
	for _, reason := range []string{"malformed"} {
		drops = append(drops, fmt.Sprintf("%s %v", reason, get(m.dropped.WithLabelValues(reason))))
	}
	t.Logf("SFU: video in %v out %v, audio in %v out %v; NACKs in %v, retransmitted %v, missed %v; keyframe requests %v; paused %v, switches %v; dropped: %v",
		get(m.packets.WithLabelValues("video", "in")), get(m.packets.WithLabelValues("video", "out")),
		get(m.packets.WithLabelValues("audio", "in")), get(m.packets.WithLabelValues("audio", "out")),
		get(m.nacksIn.(interface{ Write(*dto.Metric) error })), get(m.retransmitted.(interface{ Write(*dto.Metric) error })),
		get(m.retransmitMissed.(interface{ Write(*dto.Metric) error })), get(m.keyframeReqs.(interface{ Write(*dto.Metric) error })),
		get(m.pausedVideo.(interface{ Write(*dto.Metric) error })), get(m.layerSwitches.(interface{ Write(*dto.Metric) error })), drops)
	if n := get(m.dropped.WithLabelValues("malformed")); n > 0 {
		t.Errorf("the SFU dropped %v malformed packets", n)
	}
}

// offsets are what the SFU added to a track's sequence numbers and
// timestamps: out = in - seq, out = in + ts.
type offsets struct {
	seq uint16
	ts  uint32
}

// checkReceived checks every packet received on a track against the one
// sent under its index: same payload (after the VP8 descriptor, which the
// SFU may rewrite), same marker, sequence number and timestamp moved by
// the same offsets as every other packet. It returns the offsets.
func checkReceived(t *testing.T, kind string, got *trackLog, sent *sentLog) offsets {
	t.Helper()
	var off offsets
	errs := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= 10 {
			t.Errorf(kind+": "+format, args...)
		}
	}
	for k, r := range got.snapshot() {
		body, ok := r.body(kind)
		if !ok || len(body) < 4 {
			fail("packet %d (seq %d) has no payload this test sent", k, r.SequenceNumber)
			continue
		}
		i := binary.BigEndian.Uint32(body[len(body)-4:])
		if i >= sent.sentCount() {
			fail("packet %d (seq %d) names index %d, not sent", k, r.SequenceNumber, i)
			continue
		}
		p := sent.sent(i)
		want, _ := (&readPacket{Packet: p}).body(kind)
		if !bytes.Equal(body, want) {
			fail("index %d (seq %d): payload differs from what was sent", i, r.SequenceNumber)
		}
		if r.Marker != p.Marker {
			fail("index %d: marker %v, sent %v", i, r.Marker, p.Marker)
		}
		o := offsets{seq: p.SequenceNumber - r.SequenceNumber, ts: r.Timestamp - p.Timestamp}
		if k == 0 {
			off = o
		} else if o != off {
			fail("index %d (seq %d -> %d, ts %d -> %d): offsets %+v, earlier packets %+v", i, p.SequenceNumber, r.SequenceNumber, p.Timestamp, r.Timestamp, o, off)
		}
	}
	if errs > 10 {
		t.Errorf("%s: %d more errors", kind, errs-10)
	}
	return off
}
