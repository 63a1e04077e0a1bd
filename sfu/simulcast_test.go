package sfu

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/helpcaster/helpcaster/rtpcodec"
)

// Tests of simulcast forwarding with real pion peers on loopback. The
// publisher sends three synthetic VP8 layers whose packets say which layer
// they belong to, so a subscriber can check from the RTP it receives that
// every switch lands on a keyframe and keeps sequence numbers, timestamps
// and picture ids continuous.

func testAPI(t *testing.T) *webrtc.API { return apiWith(t, true) }

// apiWith builds a loopback-only pion API with pion's default codecs, the
// simulcast header extensions, the interceptors first (ahead of all
// others, so they see packets first) and, when defaults, pion's default
// interceptors.
func apiWith(t *testing.T, defaults bool, first ...interceptor.Factory) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	for _, f := range first {
		ir.Add(f)
	}
	if defaults {
		if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
			t.Fatal(err)
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(loopbackSettings()))
}

// newTestRoom starts an SFU with cfg and opens a room; both close, and the
// returned context ends, when the test does.
func newTestRoom(t *testing.T, cfg Config, name string) (*SFU, *Room, context.Context) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	room, err := s.Room(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return s, room, ctx
}

// sendSimulcast publishes three synthetic layers from pub and sends them
// until the test ends.
func sendSimulcast(t *testing.T, ctx context.Context, pub *testPeer, filler [maxLayers]int) {
	t.Helper()
	sendSimulcastOf(t, ctx, pub, webrtc.MimeTypeVP8, filler)
}

// sendSimulcastOf is sendSimulcast for codec mime (VP8 or H.264).
func sendSimulcastOf(t *testing.T, ctx context.Context, pub *testPeer, mime string, filler [maxLayers]int) {
	t.Helper()
	ss := publishLayersOf(t, pub, mime)
	sendCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); sendLayers(sendCtx, ss, filler) }()
	t.Cleanup(func() { stop(); <-done })
}

func loopbackSettings() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return se
}

// testPeer is a pion peer connected to one SFU participant's connection.
type testPeer struct {
	pc     *webrtc.PeerConnection
	part   *Participant
	layers chan LayerState // dynacast instructions (pub peer only)
}

// join adds a participant whose signals are handled off the SFU's
// goroutines (onSignal may be called with SFU locks held).
func join(t *testing.T, ctx context.Context, room *Room, id string, api *webrtc.API) (pub, sub *testPeer) {
	t.Helper()
	signals := make(chan Signal, 64)
	part, err := room.Join(id, func(s Signal) {
		select {
		case signals <- s:
		default:
			t.Errorf("%s: signal queue full", id)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	pub, sub = &testPeer{part: part, layers: make(chan LayerState, 16)}, &testPeer{part: part}
	for _, p := range []*testPeer{pub, sub} {
		if p.pc, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
			t.Fatal(err)
		}
	}
	for name, p := range map[string]*testPeer{PCPub: pub, PCSub: sub} {
		p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			if c != nil {
				if err := part.AddCandidate(name, c.ToJSON()); err != nil && !errors.Is(err, ErrClosed) {
					t.Errorf("%s: add %s candidate: %v", id, name, err)
				}
			}
		})
	}
	ctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-signals:
				target := pub.pc
				if s.PC == PCSub {
					target = sub.pc
				}
				switch {
				case s.Layers != nil:
					select {
					case pub.layers <- *s.Layers:
					default:
					}
				case s.Candidate != nil:
					_ = target.AddICECandidate(*s.Candidate)
				case s.Offer != "":
					if err := answerOffer(sub.pc, part, s.Offer); err != nil {
						t.Errorf("%s: %v", id, err)
					}
				}
			}
		}
	}()
	t.Cleanup(func() {
		// The signal loop stops first: a test may end while an offer is
		// being answered, and answering a closed participant fails.
		stop()
		wg.Wait()
		part.Close()
		pub.pc.Close()
		sub.pc.Close()
	})
	return pub, sub
}

func answerOffer(pc *webrtc.PeerConnection, part *Participant, offer string) error {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return err
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return err
	}
	return part.Answer(answer.SDP)
}

// simulcastSender holds a publisher's three layer tracks (lowest first) and
// what each packet must carry for the SFU to tell the layers apart: pion
// does not add the mid and rid header extensions itself.
type simulcastSender struct {
	tracks       [maxLayers]*webrtc.TrackLocalStaticRTP
	rids         [maxLayers]string
	mid          string
	midID, ridID uint8
	h264         bool // send H.264 instead of VP8
}

// publishLayersOf offers three simulcast encodings (q, h, f) of codec mime.
func publishLayersOf(t *testing.T, pub *testPeer, mime string) *simulcastSender {
	t.Helper()
	return publishLayersWith(t, pub, mime, nil)
}

// publishLayersWith is publishLayersOf that hands each layer's RTCP to
// onRTCP (nil: it is read and dropped, so the sender's interceptors run).
func publishLayersWith(t *testing.T, pub *testPeer, mime string, onRTCP func(layer int, pkts []rtcp.Packet)) *simulcastSender {
	t.Helper()
	rids := [maxLayers]string{"q", "h", "f"}
	var tracks [maxLayers]*webrtc.TrackLocalStaticRTP
	for i, rid := range []string{"q", "h", "f"} {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000},
			"video", "cam", webrtc.WithRTPStreamID(rid))
		if err != nil {
			t.Fatal(err)
		}
		tracks[i] = tr
	}
	sender, err := pub.pc.AddTrack(tracks[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range tracks[1:] {
		if err := sender.AddEncoding(tr); err != nil {
			t.Fatal(err)
		}
	}
	if onRTCP == nil {
		go func() { // ends when the connection closes
			buf := make([]byte, 1500)
			for {
				if _, _, err := sender.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	for i, rid := range rids {
		if onRTCP == nil {
			break
		}
		go func() { // ends when the connection closes
			buf := make([]byte, 1500)
			for {
				n, _, err := sender.ReadSimulcast(buf, rid)
				if err != nil {
					return
				}
				if pkts, err := rtcp.Unmarshal(buf[:n]); err == nil {
					onRTCP(i, pkts)
				}
			}
		}()
	}
	renegotiate(t, pub)
	ss := &simulcastSender{tracks: tracks, rids: rids, mid: pub.pc.GetTransceivers()[0].Mid(), h264: mime == webrtc.MimeTypeH264}
	for _, ext := range sender.GetParameters().HeaderExtensions {
		switch ext.URI {
		case sdp.SDESMidURI:
			ss.midID = uint8(ext.ID)
		case sdp.SDESRTPStreamIDURI:
			ss.ridID = uint8(ext.ID)
		}
	}
	if ss.midID == 0 || ss.ridID == 0 || ss.mid == "" {
		t.Fatalf("mid/rid header extensions not negotiated: %+v", ss)
	}
	return ss
}

// packetsPerFrame is how many RTP packets each synthetic frame takes.
const packetsPerFrame = 4

// layerSizes are the frame sizes the synthetic layers announce in key frames.
var layerSizes = [maxLayers][2]int{{160, 120}, {320, 240}, {640, 480}}

// sendLayers writes 30 frames per second on every layer until ctx ends:
// packetsPerFrame packets per frame of about filler[layer] bytes each, a
// keyframe every 10 frames, each layer with its own random sequence,
// timestamp and picture id bases. The byte after the VP8 payload header
// names the layer.
func sendLayers(ctx context.Context, ss *simulcastSender, filler [maxLayers]int) {
	type state struct {
		seq uint16
		ts  uint32
		pid uint16
	}
	var st [maxLayers]state
	for i := range st {
		st[i] = state{seq: uint16(rand.Uint32()), ts: rand.Uint32(), pid: uint16(rand.Uint32()) & 0x7fff}
	}
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	for frame := 0; ; frame++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		key := frame%10 == 0
		for i, tr := range ss.tracks {
			s := &st[i]
			for part := range packetsPerFrame {
				desc := []byte{0x80, 0x80, 0x80 | byte(s.pid>>8), byte(s.pid)}
				var body []byte
				if part == 0 {
					desc[0] |= 0x10 // S: start of partition 0
					if key {
						w, h := layerSizes[i][0], layerSizes[i][1]
						body = []byte{0x00, 0, 0, 0x9d, 0x01, 0x2a, byte(w), byte(w >> 8), byte(h), byte(h >> 8)}
					} else {
						body = []byte{0x01, 0, 0}
					}
				}
				if ss.h264 {
					// One NAL unit per packet: an SPS starts a keyframe,
					// IDR slices follow it; other pictures are non-IDR slices.
					nal := byte(0x41)
					switch {
					case key && part == 0:
						nal = 0x67
					case key:
						nal = 0x65
					}
					desc, body = []byte{nal}, nil
				}
				payload := append(append(desc, body...), byte(i))
				payload = append(payload, make([]byte, filler[i])...)
				h := rtp.Header{Version: 2, SequenceNumber: s.seq, Timestamp: s.ts, Marker: part == packetsPerFrame-1}
				_ = h.SetExtension(ss.midID, []byte(ss.mid))
				_ = h.SetExtension(ss.ridID, []byte(ss.rids[i]))
				_ = tr.WriteRTP(&rtp.Packet{Header: h, Payload: payload})
				s.seq++
			}
			s.ts += 3000
			s.pid = (s.pid + 1) & 0x7fff
		}
	}
}

// received is one packet as a subscriber saw it.
type received struct {
	seq   uint16
	ts    uint32
	pid   uint16
	start bool // first packet of a frame
	key   bool
	layer int
	noPID bool // the codec has no picture id (H.264)
}

// collector records the video packets a subscriber receives.
type collector struct {
	mu   sync.Mutex
	pkts []received
}

func (c *collector) attach(sub *testPeer) {
	sub.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if tr.Codec().MimeType == webrtc.MimeTypeH264 {
				if len(p.Payload) < 2 {
					continue
				}
				c.mu.Lock()
				r := received{seq: p.SequenceNumber, ts: p.Timestamp, noPID: true, layer: int(p.Payload[1]),
					key: p.Payload[0]&0x1f == 7} // an SPS
				c.pkts = append(c.pkts, r)
				c.mu.Unlock()
				continue
			}
			d, ok := rtpcodec.ParseVP8Descriptor(p.Payload)
			if !ok || d.PictureIDAt == 0 || len(p.Payload) < d.PayloadHeader+1 {
				continue
			}
			r := received{seq: p.SequenceNumber, ts: p.Timestamp, pid: d.PictureID(p.Payload), start: p.Payload[0]&0x10 != 0}
			body := p.Payload[d.PayloadHeader:]
			if r.start {
				r.key = rtpcodec.IsKeyframe(mimeVP8, p.Payload)
				if r.key {
					body = body[10:]
				} else {
					body = body[3:]
				}
			}
			r.layer = int(body[0])
			c.mu.Lock()
			c.pkts = append(c.pkts, r)
			c.mu.Unlock()
		}
	})
}

// reset forgets what was received so far.
func (c *collector) reset() {
	c.mu.Lock()
	c.pkts = nil
	c.mu.Unlock()
}

func (c *collector) snapshot() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]received(nil), c.pkts...)
}

func (c *collector) lastLayer() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pkts) == 0 {
		return layerNone
	}
	return c.pkts[len(c.pkts)-1].layer
}

func waitLayer(t *testing.T, ctx context.Context, who string, c *collector, want int) {
	t.Helper()
	for c.lastLayer() != want {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: still on layer %d, want %d", who, c.lastLayer(), want)
		case <-time.After(20 * time.Millisecond):
		}
	}
	time.Sleep(300 * time.Millisecond) // a few more frames on the new layer
}

// checkStream asserts that a subscriber's stream is one the decoder can
// follow. Packets are taken in sequence-number order (retransmissions
// arrive late), duplicates dropped. It must start on a keyframe (when
// fromStart) and have no sequence gap (when lossless); each change of layer
// between consecutive packets must start on a keyframe of the new layer,
// with the picture id one on and the timestamp moving forward. It returns
// the layers in the order seen.
func checkStream(t *testing.T, who string, pkts []received, fromStart bool) []int {
	t.Helper()
	if len(pkts) == 0 {
		t.Fatalf("%s received no video", who)
	}
	type ordered struct {
		ext int
		received
	}
	first := pkts[0].seq
	byExt := map[int]received{}
	for _, p := range pkts {
		byExt[seqDiff(p.seq, first)] = p
	}
	seq := make([]ordered, 0, len(byExt))
	for e, p := range byExt {
		seq = append(seq, ordered{e, p})
	}
	slices.SortFunc(seq, func(a, b ordered) int { return a.ext - b.ext })

	if fromStart && !seq[0].key {
		t.Errorf("%s: first packet is not a keyframe: %+v", who, seq[0].received)
	}
	layers := []int{seq[0].layer}
	for i := 1; i < len(seq); i++ {
		prev, cur := seq[i-1], seq[i]
		if cur.ext != prev.ext+1 {
			if fromStart {
				t.Errorf("%s: sequence gap %d -> %d", who, prev.seq, cur.seq)
			}
			continue // lost in between: nothing to compare
		}
		if cur.layer == prev.layer {
			continue
		}
		layers = append(layers, cur.layer)
		if !cur.key {
			t.Errorf("%s: switch %d -> %d starts on a non-keyframe", who, prev.layer, cur.layer)
		}
		if want := (prev.pid + 1) & 0x7fff; !cur.noPID && cur.pid != want {
			t.Errorf("%s: picture id %d -> %d across switch, want %d", who, prev.pid, cur.pid, want)
		}
		if d := tsDiff(cur.ts, prev.ts); d <= 0 || d > 90000 {
			t.Errorf("%s: timestamp moves by %d across switch", who, d)
		}
	}
	return layers
}

// TestSimulcastSwitching: one publisher, two subscribers. One subscriber
// drops to the lowest layer and climbs back; the other keeps the top layer.
// It runs with plain and with batched UDP writes.
func TestSimulcastSwitching(t *testing.T) {
	t.Run("plain writes", func(t *testing.T) { testSimulcastSwitching(t, Config{LoopbackOnly: true}) })
	t.Run("batched writes", func(t *testing.T) { testSimulcastSwitching(t, Config{LoopbackOnly: true, BatchWrites: true}) })
	t.Run("H.264", func(t *testing.T) { testSimulcastSwitchingOf(t, Config{LoopbackOnly: true}, webrtc.MimeTypeH264) })
}

func testSimulcastSwitching(t *testing.T, cfg Config) {
	testSimulcastSwitchingOf(t, cfg, webrtc.MimeTypeVP8)
}

func testSimulcastSwitchingOf(t *testing.T, cfg Config, mime string) {
	_, room, ctx := newTestRoom(t, cfg, "simulcast")
	api := testAPI(t)

	pub, _ := join(t, ctx, room, "publisher", api)
	_, subA := join(t, ctx, room, "constrained", api)
	_, subB := join(t, ctx, room, "steady", api)
	var a, b collector
	a.attach(subA)
	b.attach(subB)

	sendSimulcastOf(t, ctx, pub, mime, [maxLayers]int{8, 16, 32})

	waitLayer(t, ctx, "constrained", &a, layerFull)
	waitLayer(t, ctx, "steady", &b, layerFull)
	// Layers appear one by one, so a subscriber may start lower and move
	// up; check that start, then follow the rest from the full layer.
	checkStream(t, "constrained (start)", a.snapshot(), true)
	checkStream(t, "steady (start)", b.snapshot(), true)
	a.reset()
	b.reset()

	subA.part.SetMaxQuality(QualityLow)
	waitLayer(t, ctx, "constrained", &a, layerQuarter)
	subA.part.SetMaxQuality(QualityMedium)
	waitLayer(t, ctx, "constrained", &a, layerHalf)
	subA.part.SetMaxQuality(QualityHigh)
	waitLayer(t, ctx, "constrained", &a, layerFull)

	if got := checkStream(t, "constrained", a.snapshot(), false); len(got) != 4 {
		t.Errorf("constrained saw layers %v, want full, quarter, half, full", got)
	}
	if got := checkStream(t, "steady", b.snapshot(), false); len(got) != 1 || got[0] != layerFull {
		t.Errorf("steady saw layers %v, want only the full layer", got)
	}
	if q := subA.part.QualityForSize(300, 200); q != QualityMedium {
		t.Errorf("quality for 300x200 = %d, want medium from the seen 320x240 layer", q)
	}
}
