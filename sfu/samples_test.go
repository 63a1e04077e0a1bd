package sfu

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"

	"github.com/helpcaster/helpcaster/rtpcodec"
)

// Simulcast from real VP8: the publisher sends testdata/sim-{q,h,f}.ivf
// (160x120, 320x240 and 640x480 encodings of the same source, keyframe
// every 15 frames) as its three layers. Real frames cannot carry a layer
// mark the way the synthetic layers of simulcast_test.go do, so a subscriber
// tells the layers apart by the frame size of each keyframe. Every packet's
// VP8 data (which the SFU forwards unchanged) is also looked up among the
// packets the publisher can send, which tells its layer and whether it
// belongs to a keyframe, so a packet of a new layer that reaches the
// subscriber ahead of that layer's keyframe is caught too.

// sampleMTU is the VP8 payload size the sample publisher packetizes to.
const sampleMTU = 1100

// sampleLayer is one layer's IVF file, split into frames.
type sampleLayer struct {
	frames [][]byte
	key    []bool // frames[i] is a keyframe
}

func loadSampleLayer(t *testing.T, name string) sampleLayer {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := ivfreader.NewWith(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var l sampleLayer
	for {
		f, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		l.frames = append(l.frames, f)
		l.key = append(l.key, len(f) > 0 && f[0]&0x01 == 0) // frame tag: P bit clear
	}
	if len(l.frames) == 0 || !l.key[0] {
		t.Fatalf("%s: no frames, or the first is not a keyframe", name)
	}
	return l
}

// nextKey returns the index of the first keyframe at or after i, wrapping
// round to the start of the file.
func (l *sampleLayer) nextKey(i int) int {
	for j := i; j < len(l.frames); j++ {
		if l.key[j] {
			return j
		}
	}
	return 0
}

// sampleOrigin is where the VP8 data of a packet comes from.
type sampleOrigin struct {
	layer int  // layerNone: unknown, or found in two layers
	key   bool // part of a keyframe
}

// sampleContent maps the VP8 data of every packet the sample publisher can
// send (the payload after the payload descriptor) to its origin.
func sampleContent(layers *[maxLayers]sampleLayer) map[string]sampleOrigin {
	m := map[string]sampleOrigin{}
	for i := range layers {
		p := codecs.VP8Payloader{EnablePictureID: true}
		for j, f := range layers[i].frames {
			for _, pkt := range p.Payload(sampleMTU, f) {
				k, o := string(pkt[4:]), sampleOrigin{i, layers[i].key[j]}
				if old, ok := m[k]; ok && old != o {
					o = sampleOrigin{layer: layerNone}
				}
				m[k] = o
			}
		}
	}
	return m
}

// publishSampleLayers offers three simulcast encodings; a keyframe request
// on a layer sets its flag in keyReq for sendSampleLayers.
func publishSampleLayers(t *testing.T, pub *testPeer, keyReq *[maxLayers]atomic.Bool, plis *atomic.Int64) *simulcastSender {
	t.Helper()
	return publishLayersWith(t, pub, webrtc.MimeTypeVP8, func(layer int, pkts []rtcp.Packet) {
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				keyReq[layer].Store(true)
				plis.Add(1)
			}
		}
	})
}

// sendSampleLayers plays each layer's file in a loop at 30 frames per
// second until ctx ends, with continuous sequence numbers, timestamps and
// picture ids per layer (random bases). A keyframe request on a layer makes
// it jump to the file's next keyframe.
func sendSampleLayers(ctx context.Context, ss *simulcastSender, layers *[maxLayers]sampleLayer, keyReq *[maxLayers]atomic.Bool) {
	type state struct {
		pos int
		seq uint16
		ts  uint32
		pay codecs.VP8Payloader
	}
	var st [maxLayers]state
	for i := range st {
		st[i] = state{seq: uint16(rand.Uint32()), ts: rand.Uint32(), pay: codecs.VP8Payloader{EnablePictureID: true}}
	}
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for i, tr := range ss.tracks {
			s, l := &st[i], &layers[i]
			if keyReq[i].Swap(false) {
				s.pos = l.nextKey(s.pos)
			}
			pkts := s.pay.Payload(sampleMTU, l.frames[s.pos])
			for j, payload := range pkts {
				h := rtp.Header{Version: 2, SequenceNumber: s.seq, Timestamp: s.ts, Marker: j == len(pkts)-1}
				_ = h.SetExtension(ss.midID, []byte(ss.mid))
				_ = h.SetExtension(ss.ridID, []byte(ss.rids[i]))
				_ = tr.WriteRTP(&rtp.Packet{Header: h, Payload: payload})
				s.seq++
			}
			s.ts += 3000
			s.pos = (s.pos + 1) % len(l.frames)
		}
	}
}

// lossLog is a linkLimiter that also records, per SSRC, the media packets
// it dropped and that did not arrive later: their sequence numbers and
// payloads, so a check can tell what the SFU sent even where the subscriber
// never saw it.
type lossLog struct {
	*linkLimiter
	mu   sync.Mutex
	lost map[uint32]map[uint16][]byte
}

func newLossLog() *lossLog {
	return &lossLog{linkLimiter: &linkLimiter{}, lost: map[uint32]map[uint16][]byte{}}
}

func (l *lossLog) NewInterceptor(string) (interceptor.Interceptor, error) { return l, nil }

func (l *lossLog) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	if !strings.EqualFold(info.MimeType, webrtc.MimeTypeVP8) {
		return l.linkLimiter.BindRemoteStream(info, r)
	}
	ssrc := info.SSRC
	// Every packet is marked lost on arrival and unmarked when the limiter
	// lets it through.
	arrive := interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		var h rtp.Header
		if err == nil && n >= 4 {
			var payload []byte
			if hn, err := h.Unmarshal(b[:n]); err == nil {
				payload = bytes.Clone(b[hn:n])
			}
			l.mark(ssrc, binary.BigEndian.Uint16(b[2:4]), payload)
		}
		return n, a, err
	})
	limited := l.linkLimiter.BindRemoteStream(info, arrive)
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := limited.Read(b, a)
		if err == nil && n >= 4 {
			l.arrived(ssrc, binary.BigEndian.Uint16(b[2:4]))
		}
		return n, a, err
	})
}

// mark records packet seq as lost until it arrives; payload is its RTP
// payload (nil if its header did not parse).
func (l *lossLog) mark(ssrc uint32, seq uint16, payload []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.lost[ssrc]
	if m == nil {
		m = map[uint16][]byte{}
		l.lost[ssrc] = m
	}
	m[seq] = payload
}

func (l *lossLog) arrived(ssrc uint32, seq uint16) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.lost[ssrc], seq)
}

// dropped returns the payloads of the packets dropped on ssrc, by sequence
// number.
func (l *lossLog) dropped(ssrc uint32) map[uint16][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.lost[ssrc])
}

// samplePkt is one packet as a subscriber of the sample layers saw it.
type samplePkt struct {
	seq     uint16
	ts      uint32
	pid     uint16
	start   bool // first packet of a picture
	marker  bool
	key     bool // first packet of a keyframe
	size    int  // layer whose frame size the keyframe announces (key only)
	content sampleOrigin
	empty   bool // no payload (padding)
}

// sampleCollector records the video packets a subscriber receives.
type sampleCollector struct {
	content map[string]sampleOrigin // shared, read only

	mu      sync.Mutex
	ssrc    uint32
	pkts    []samplePkt
	keySize int // layer of the last keyframe received; layerNone before the first
}

func newSampleCollector(content map[string]sampleOrigin) *sampleCollector {
	return &sampleCollector{content: content, keySize: layerNone}
}

func sizeLayer(w, h int) int {
	for i, s := range layerSizes {
		if s[0] == w && s[1] == h {
			return i
		}
	}
	return layerNone
}

func (c *sampleCollector) attach(sub *testPeer) {
	sub.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if tr.Kind() != webrtc.RTPCodecTypeVideo {
			return
		}
		c.mu.Lock()
		c.ssrc = uint32(tr.SSRC())
		c.mu.Unlock()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			r := samplePkt{seq: p.SequenceNumber, ts: p.Timestamp, marker: p.Marker, size: layerNone, content: sampleOrigin{layer: layerNone}}
			if d, ok := rtpcodec.ParseVP8Descriptor(p.Payload); len(p.Payload) == 0 {
				r.empty = true
			} else if ok {
				if d.PictureIDAt != 0 {
					r.pid = d.PictureID(p.Payload)
				}
				r.start = rtpcodec.VP8PictureStart(p.Payload)
				r.key = rtpcodec.IsKeyframe(mimeVP8, p.Payload)
				if w, h, ok := rtpcodec.VP8KeyframeSize(p.Payload); ok {
					r.size = sizeLayer(w, h)
				}
				if o, ok := c.content[string(p.Payload[d.PayloadHeader:])]; ok {
					r.content = o
				}
			}
			c.mu.Lock()
			c.pkts = append(c.pkts, r)
			if r.key {
				c.keySize = r.size
			}
			c.mu.Unlock()
		}
	})
}

// layer is the layer of the last keyframe received.
func (c *sampleCollector) layer() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keySize
}

func (c *sampleCollector) snapshot() (uint32, []samplePkt) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ssrc, slices.Clone(c.pkts)
}

// droppedOrigin tells where a dropped packet's payload came from and
// whether it is the first packet of a keyframe; ok is false for a payload
// the publisher did not send (or none).
func droppedOrigin(payload []byte, content map[string]sampleOrigin) (o sampleOrigin, key, ok bool) {
	d, valid := rtpcodec.ParseVP8Descriptor(payload)
	if !valid || len(payload) == 0 {
		return o, false, false
	}
	o, ok = content[string(payload[d.PayloadHeader:])]
	return o, rtpcodec.IsKeyframe(mimeVP8, payload), ok
}

// checkSampleStream asserts that a subscriber's whole stream, taken in
// sequence-number order (retransmissions arrive late, duplicates dropped),
// is one a decoder can follow:
//   - each packet carries VP8 data the publisher sent, and a keyframe's size
//     names the layer its data comes from;
//   - the stream starts, and each switch of layer starts, with the first
//     packet of a keyframe of the new layer, as the SFU sent it: where the
//     link dropped the packets just before, the first of the new layer's
//     among them must be that keyframe's first packet;
//   - sequence numbers have no gap but packets in lost (dropped by the link
//     and not repaired);
//   - timestamps never go back; within a picture timestamp and picture id
//     stay; the next picture has the next picture id and a later timestamp,
//     and over a gap the picture id moves on by at most one per lost packet.
//
// It returns the layers in the order seen. A picture cut short by a switch
// (the new layer's keyframe follows a packet without the marker bit) is
// only logged: the keyframe that follows makes it harmless.
func checkSampleStream(t *testing.T, who string, pkts []samplePkt, lost map[uint16][]byte, content map[string]sampleOrigin) []int {
	t.Helper()
	if len(pkts) == 0 {
		t.Fatalf("%s received no video", who)
	}
	type ordered struct {
		ext int
		samplePkt
	}
	first := pkts[0].seq
	byExt := map[int]ordered{}
	for _, p := range pkts {
		e := seqDiff(p.seq, first)
		if _, dup := byExt[e]; !dup {
			byExt[e] = ordered{e, p}
		}
	}
	seq := make([]ordered, 0, len(byExt))
	for _, p := range byExt {
		seq = append(seq, p)
	}
	slices.SortFunc(seq, func(a, b ordered) int { return a.ext - b.ext })

	errs := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= 10 {
			t.Errorf(who+": "+format, args...)
		}
	}
	var layers []int
	cur := layerNone
	losses, cut, lateSwitch := 0, 0, 0
	for i, p := range seq {
		gap, linkGap := 0, true // packets missing before p, all dropped by the link
		if i > 0 {
			prev := seq[i-1]
			if d := tsDiff(p.ts, prev.ts); d < 0 {
				fail("timestamp goes back by %d at seq %d", -d, p.seq)
			}
			gap = p.ext - prev.ext - 1
			switch {
			case gap > 0:
				for e := prev.ext + 1; e < p.ext; e++ {
					if _, dropped := lost[first+uint16(e)]; !dropped {
						fail("seq %d missing but not dropped by the link", first+uint16(e))
						linkGap = false
					}
				}
				losses += gap
				if d := (p.pid - prev.pid) & 0x7fff; !p.empty && !prev.empty && d > uint16(gap+1) {
					fail("picture id jumps %d -> %d over %d lost packets", prev.pid, p.pid, gap)
				}
			case p.empty || prev.empty:
			case p.start && (p.pid != (prev.pid+1)&0x7fff || tsDiff(p.ts, prev.ts) <= 0):
				fail("seq %d: picture id %d -> %d, timestamp %+d at a new picture", p.seq, prev.pid, p.pid, tsDiff(p.ts, prev.ts))
			case !p.start && (p.pid != prev.pid || p.ts != prev.ts):
				fail("seq %d: picture id %d -> %d, timestamp %+d within a picture", p.seq, prev.pid, p.pid, tsDiff(p.ts, prev.ts))
			case p.start && !prev.marker:
				cut++
			}
		}
		if p.empty {
			continue
		}
		o := p.content
		if o.layer == layerNone {
			fail("seq %d carries VP8 data the publisher did not send", p.seq)
			continue
		}
		if p.key && p.size != o.layer {
			fail("seq %d: keyframe of size layer %d carries layer %d data", p.seq, p.size, o.layer)
		}
		if o.layer == cur {
			continue
		}
		// A switch (or the start): on the first packet of a keyframe of
		// the new layer. Where the link dropped packets just before p, the
		// switch may have begun among them: then the first of them that
		// carries the new layer must be that first packet.
		startKey, at := p.key && p.size == o.layer, p.seq
		if gap > 0 && linkGap {
			for e := seq[i-1].ext + 1; e < p.ext; e++ {
				if origin, key, ok := droppedOrigin(lost[first+uint16(e)], content); ok && origin.layer == o.layer {
					startKey, at = key, first+uint16(e)
					lateSwitch++
					break
				}
			}
		}
		if !startKey {
			fail("seq %d: switch from layer %d to %d starts on a packet that is not a keyframe's first (received: key %v, size layer %d, part of a keyframe %v; %d packets dropped by the link before it)",
				at, cur, o.layer, p.key, p.size, o.key, gap)
		}
		cur = o.layer
		layers = append(layers, cur)
	}
	if errs > 10 {
		t.Errorf("%s: %d more errors", who, errs-10)
	}
	t.Logf("%s: %d packets, %d lost on the link, layers %v (%d switches began among packets the link dropped, %d pictures cut short by a switch)",
		who, len(seq), losses, layers, lateSwitch, cut)
	return layers
}

// TestSimulcastFromSampleFiles: a publisher sends the three sample files as
// simulcast layers to two subscribers. The one behind a link narrowed to
// between the middle and the top layer's rate moves below the top layer
// and climbs back when the link recovers; the other keeps the top layer;
// every switch, and each stream's start, lands on a keyframe.
func TestSimulcastFromSampleFiles(t *testing.T) {
	var layers [maxLayers]sampleLayer
	for i, name := range []string{"sim-q.ivf", "sim-h.ivf", "sim-f.ivf"} {
		layers[i] = loadSampleLayer(t, name)
	}
	content := sampleContent(&layers)

	_, room, ctx := newTestRoom(t, Config{LoopbackOnly: true}, "samples")
	link := newLossLog()
	pub, _ := join(t, ctx, room, "publisher", testAPI(t))
	_, narrowSub := join(t, ctx, room, "narrow", apiWith(t, true, link))
	_, wideSub := join(t, ctx, room, "wide", testAPI(t))
	narrow, wide := newSampleCollector(content), newSampleCollector(content)
	narrow.attach(narrowSub)
	wide.attach(wideSub)

	var keyReq [maxLayers]atomic.Bool
	var plis atomic.Int64
	ss := publishSampleLayers(t, pub, &keyReq, &plis)
	sendCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); sendSampleLayers(sendCtx, ss, &layers, &keyReq) }()
	t.Cleanup(func() { stop(); <-done })

	start := time.Now()
	waitFor(t, ctx, "both subscribers on the top layer", func() bool { return narrow.layer() == layerFull && wide.layer() == layerFull })
	time.Sleep(time.Second) // some frames on the top layer
	t.Logf("both on the top layer after %v", time.Since(start).Round(time.Millisecond))

	// The layers run at about 80, 260 and 650 kbit/s: room for the middle
	// layer (and its keyframes within the limiter's 100 ms burst), not the top.
	link.limit.Store(450_000)
	limited := time.Now()
	waitFor(t, ctx, "narrow moves below the top layer", func() bool { l := narrow.layer(); return l != layerFull && l != layerNone })
	t.Logf("narrow link: moved to layer %d after %v", narrow.layer(), time.Since(limited).Round(time.Millisecond))
	time.Sleep(time.Second)

	link.limit.Store(0) // the link recovers
	recovered := time.Now()
	// Back on the top layer to stay: a probe may have lifted it there for a
	// moment while the link was still narrow.
	var topSince time.Time
	waitFor(t, ctx, "narrow back on the top layer for 2 s", func() bool {
		if narrow.layer() != layerFull {
			topSince = time.Time{}
			return false
		}
		if topSince.IsZero() {
			topSince = time.Now()
		}
		return time.Since(topSince) >= 2*time.Second
	})
	t.Logf("narrow back on the top layer for good %v after the link recovered", time.Since(recovered).Round(time.Millisecond))
	t.Logf("publisher answered %d keyframe requests", plis.Load())

	nSSRC, nPkts := narrow.snapshot()
	_, wPkts := wide.snapshot()
	nLayers := checkSampleStream(t, "narrow", nPkts, link.dropped(nSSRC), content)
	wLayers := checkSampleStream(t, "wide", wPkts, nil, content)

	// Both may start below the top layer (layers appear one by one); from
	// the first time on it, wide stays and narrow goes down and back up.
	fromTop := func(ls []int) []int { return ls[max(0, slices.Index(ls, layerFull)):] }
	if got := fromTop(wLayers); len(got) != 1 || got[0] != layerFull {
		t.Errorf("wide saw layers %v, want only the top layer once on it", wLayers)
	}
	if got := fromTop(nLayers); len(got) < 3 || got[0] != layerFull || got[len(got)-1] != layerFull || slices.Min(got) == layerFull {
		t.Errorf("narrow saw layers %v, want the top layer, lower ones, then the top layer again", nLayers)
	}
}
