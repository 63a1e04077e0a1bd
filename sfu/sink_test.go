package sfu

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Tests of the TrackSink seam (Room.SetSinkFactory) with real pion peers
// on loopback: a sink is told its track right, gets every packet of it in
// the order sent, and is closed once when the track, its publisher or the
// room ends, and given nothing after.

// sunk is one packet as a sink received it.
type sunk struct {
	seq     uint16
	payload []byte
}

// srReport is one sender report as a sink was told it.
type srReport struct {
	ssrc uint32
	ntp  uint64
	rtp  uint32
}

// recordingSink is a TrackSink that keeps a copy of everything it is given.
type recordingSink struct {
	t      *testing.T
	info   TrackInfo
	closed chan struct{} // closed by the first Close

	mu      sync.Mutex
	pkts    []sunk          // guarded by mu
	ssrcs   map[uint32]bool // the SSRCs of pkts; guarded by mu
	reports []srReport      // guarded by mu
	closes  int             // guarded by mu
}

func (s *recordingSink) WriteRTP(h *rtp.Header, payload []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closes > 0 {
		s.t.Errorf("%s: packet %d written after Close", s.info.TrackID, h.SequenceNumber)
	}
	s.pkts = append(s.pkts, sunk{seq: h.SequenceNumber, payload: bytes.Clone(payload)})
	if s.ssrcs == nil {
		s.ssrcs = make(map[uint32]bool)
	}
	s.ssrcs[h.SSRC] = true
}

func (s *recordingSink) SenderReport(ssrc uint32, ntpTime uint64, rtpTime uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closes > 0 {
		s.t.Errorf("%s: sender report after Close", s.info.TrackID)
	}
	s.reports = append(s.reports, srReport{ssrc, ntpTime, rtpTime})
}

// told reports whether the sink was told r, and that r's SSRC is that of
// the packets it got.
func (s *recordingSink) told(r srReport) (told, sameSSRC bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.reports, r), s.ssrcs[r.ssrc]
}

func (s *recordingSink) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closes++
	if s.closes == 1 {
		close(s.closed)
	} else {
		s.t.Errorf("%s: Close called %d times", s.info.TrackID, s.closes)
	}
}

func (s *recordingSink) received() []sunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunk(nil), s.pkts...)
}

func (s *recordingSink) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// sinkFactory makes a recordingSink for every track, found by track id.
type sinkFactory struct {
	t     *testing.T
	mu    sync.Mutex
	sinks map[string]*recordingSink // guarded by mu
}

func (f *sinkFactory) make(info TrackInfo) TrackSink {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sinks[info.TrackID] != nil {
		f.t.Errorf("a second sink for track %s", info.TrackID)
	}
	s := &recordingSink{t: f.t, info: info, closed: make(chan struct{})}
	f.sinks[info.TrackID] = s
	return s
}

func (f *sinkFactory) sink(trackID string) *recordingSink {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sinks[trackID]
}

// sinkRoom opens a room whose tracks are sunk into a new sinkFactory.
func sinkRoom(t *testing.T, name string) (*Room, *sinkFactory, context.Context) {
	t.Helper()
	_, room, ctx := newTestRoom(t, Config{LoopbackOnly: true}, name)
	f := &sinkFactory{t: t, sinks: map[string]*recordingSink{}}
	room.SetSinkFactory(f.make)
	return room, f, ctx
}

// sinkTrack is one track a test publisher sends, and what it sent.
type sinkTrack struct {
	local  *webrtc.TrackLocalStaticRTP
	sender *webrtc.RTPSender
	mime   string
	seq    uint16
	sent   []sunk
	plis   atomic.Int32 // keyframe requests the publisher got for it
}

// publishTracks adds a track per codec (track id "<kind>-<n>") to pub's
// connection, negotiates it with the SFU and waits until the connection
// is up, so that every packet written from then on is sent.
func publishTracks(t *testing.T, ctx context.Context, pub *testPeer, mimes ...string) []*sinkTrack {
	t.Helper()
	var tracks []*sinkTrack
	for i, mime := range mimes {
		kind, _, _ := strings.Cut(mime, "/")
		clock := uint32(90000)
		if mime == webrtc.MimeTypeOpus {
			clock = 48000
		}
		local, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: mime, ClockRate: clock},
			fmt.Sprintf("%s-%d", kind, i), "stream")
		if err != nil {
			t.Fatal(err)
		}
		sender, err := pub.pc.AddTrack(local)
		if err != nil {
			t.Fatal(err)
		}
		tr := &sinkTrack{local: local, sender: sender, mime: mime, seq: uint16(65450 + 20*i)}
		go func() { // ends when the connection closes
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					if _, ok := p.(*rtcp.PictureLossIndication); ok {
						tr.plis.Add(1)
					}
				}
			}
		}()
		tracks = append(tracks, tr)
	}
	renegotiate(t, pub)
	waitFor(t, ctx, "the publisher connected", func() bool {
		return pub.pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	return tracks
}

// renegotiate offers pub's connection as it is now to the SFU.
func renegotiate(t *testing.T, pub *testPeer) {
	t.Helper()
	offer, err := pub.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	answer, err := pub.part.Offer(offer.SDP)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
}

// sendPackets writes n packets on each track in turn, a few milliseconds
// apart (loopback does not drop at that rate), each with a payload of its
// own: a VP8 keyframe descriptor and header, so the SFU takes it as the
// codec it says it is, then the track and packet number. The sequence
// numbers wrap after about 80 packets.
func sendPackets(t *testing.T, tracks []*sinkTrack, n int) {
	t.Helper()
	for i := range n {
		for k, tr := range tracks {
			payload := fmt.Appendf([]byte{0x10, 0x00, 0, 0, 0x9d, 0x01, 0x2a}, "track %d packet %d", k, i)
			h := rtp.Header{Version: 2, SequenceNumber: tr.seq, Timestamp: uint32(i) * 960, Marker: true}
			if err := tr.local.WriteRTP(&rtp.Packet{Header: h, Payload: payload}); err != nil {
				t.Fatal(err)
			}
			tr.sent = append(tr.sent, sunk{seq: tr.seq, payload: payload})
			tr.seq++
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkSunk waits until the sink of tr has as many packets as tr sent and
// checks they are the same, in the same order, and that no more come.
func checkSunk(t *testing.T, ctx context.Context, f *sinkFactory, tr *sinkTrack) {
	t.Helper()
	id := tr.local.ID()
	var s *recordingSink
	waitFor(t, ctx, "a sink for "+id, func() bool { s = f.sink(id); return s != nil })
	ready := func() bool { return len(s.received()) >= len(tr.sent) }
	deadline := time.Now().Add(10 * time.Second)
	for !ready() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // time for any packet too many to arrive
	got := s.received()
	if len(got) != len(tr.sent) {
		t.Errorf("%s: the sink got %d packets, the publisher sent %d", id, len(got), len(tr.sent))
	}
	for i := range min(len(got), len(tr.sent)) {
		if got[i].seq != tr.sent[i].seq || !bytes.Equal(got[i].payload, tr.sent[i].payload) {
			t.Errorf("%s: packet %d in the sink is %d %q, the publisher sent %d %q", id, i,
				got[i].seq, got[i].payload, tr.sent[i].seq, tr.sent[i].payload)
			break
		}
	}
}

// checkInfo checks what the factory was told of tr, published by who.
func checkInfo(t *testing.T, s *recordingSink, who string, tr *sinkTrack) {
	t.Helper()
	kind, _, _ := strings.Cut(tr.mime, "/")
	info := s.info
	if info.Participant != who || info.TrackID != tr.local.ID() || info.Kind != kind ||
		!strings.EqualFold(info.Codec.MimeType, tr.mime) || info.Codec.ClockRate != tr.local.Codec().ClockRate {
		t.Errorf("TrackInfo %+v; want participant %s, track %s, kind %s, codec %s/%d",
			info, who, tr.local.ID(), kind, tr.mime, tr.local.Codec().ClockRate)
	}
}

// TestTrackSink: a publisher's audio and video tracks each get a sink
// that sees every packet in order; removing the video track closes its
// sink alone, and the publisher's leaving closes the other before Close
// returns.
func TestTrackSink(t *testing.T) {
	room, f, ctx := sinkRoom(t, "sink")
	pub, _ := join(t, ctx, room, "alice", testAPI(t))
	// A subscriber too: the sink is one of the tracks' sinks among others.
	join(t, ctx, room, "bob", testAPI(t))
	tracks := publishTracks(t, ctx, pub, webrtc.MimeTypeOpus, webrtc.MimeTypeVP8)
	sendPackets(t, tracks, 150)
	for _, tr := range tracks {
		checkSunk(t, ctx, f, tr)
		checkInfo(t, f.sink(tr.local.ID()), "alice", tr)
	}
	audio, video := f.sink(tracks[0].local.ID()), f.sink(tracks[1].local.ID())
	if audio.isClosed() || video.isClosed() {
		t.Fatal("a sink closed while its track runs")
	}

	// The publisher stops sending video.
	if err := pub.pc.RemoveTrack(tracks[1].sender); err != nil {
		t.Fatal(err)
	}
	renegotiate(t, pub)
	select {
	case <-video.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the video sink was not closed when its track ended")
	}
	if audio.isClosed() {
		t.Fatal("the audio sink closed with the video track")
	}

	// The publisher leaves.
	pub.part.Close()
	if !audio.isClosed() {
		t.Fatal("the audio sink is still open when its publisher has left")
	}
}

// TestTrackSinkRoomClose: closing the room closes its tracks' sinks
// before Close returns.
func TestTrackSinkRoomClose(t *testing.T) {
	room, f, ctx := sinkRoom(t, "sink-close")
	pub, _ := join(t, ctx, room, "alice", testAPI(t))
	tracks := publishTracks(t, ctx, pub, webrtc.MimeTypeVP8)
	sendPackets(t, tracks, 20)
	checkSunk(t, ctx, f, tracks[0])
	room.Close()
	if !f.sink(tracks[0].local.ID()).isClosed() {
		t.Fatal("the sink is still open when its room has closed")
	}
}

// TestTrackSinkControl: a sink can ask the publisher for a keyframe, and
// is told the publisher's sender reports with the SSRC of the packets it
// gets.
func TestTrackSinkControl(t *testing.T) {
	room, f, ctx := sinkRoom(t, "sink-control")
	pub, _ := join(t, ctx, room, "alice", testAPI(t))
	tracks := publishTracks(t, ctx, pub, webrtc.MimeTypeVP8)
	tr := tracks[0]
	sendPackets(t, tracks, 20)
	checkSunk(t, ctx, f, tr)
	s := f.sink(tr.local.ID())

	// Past the throttle of any request the SFU made itself.
	time.Sleep(2 * keyframeInterval)
	before := tr.plis.Load()
	s.info.RequestKeyframe()
	waitFor(t, ctx, "the publisher asked for a keyframe", func() bool { return tr.plis.Load() > before })

	ssrc := uint32(tr.sender.GetParameters().Encodings[0].SSRC)
	want := srReport{ssrc: ssrc, ntp: 0xe0a1_b2c3_0000_0000, rtp: 123456}
	if err := pub.pc.WriteRTCP([]rtcp.Packet{&rtcp.SenderReport{SSRC: want.ssrc, NTPTime: want.ntp, RTPTime: want.rtp}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the sink told of the sender report", func() bool { told, _ := s.told(want); return told })
	if _, same := s.told(want); !same {
		t.Errorf("the sender report's SSRC %d is not that of the packets the sink got", want.ssrc)
	}
}
