package sfu

import (
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/helpcaster/helpcaster/rtpcodec"
)

// Marked media for TestImpairedCall: a publisher that writes its own RTP,
// each packet's payload made from its index (so a receiver can tell which
// packet it got and that it is intact), logging what it sent; and a
// subscriber-side log of what the application read.

// readPacket is a packet as the subscriber's application read it.
type readPacket struct {
	*rtp.Packet
	rtx bool // repaired from the RTX stream
}

// body is the part of the payload the SFU must not touch: all of it for
// audio, what follows the VP8 descriptor for video.
func (r *readPacket) body(kind string) ([]byte, bool) {
	if kind == "audio" {
		return r.Payload, true
	}
	d, ok := rtpcodec.ParseVP8Descriptor(r.Payload)
	if !ok {
		return nil, false
	}
	return r.Payload[d.PayloadHeader:], true
}

// trackLog records what a subscriber reads from one track.
type trackLog struct {
	mu   sync.Mutex
	ssrc uint32
	kind string
	pkts []readPacket
	idx  map[uint32]bool // indexes received
	rtx  int
}

func (l *trackLog) read(tr *webrtc.TrackRemote) {
	kind := tr.Kind().String()
	l.mu.Lock()
	l.ssrc, l.kind, l.idx = uint32(tr.SSRC()), kind, map[uint32]bool{}
	l.mu.Unlock()
	for {
		p, attrs, err := tr.ReadRTP()
		if err != nil {
			return
		}
		r := readPacket{Packet: p, rtx: attrs != nil && attrs.Get(webrtc.AttributeRtxSsrc) != nil}
		l.mu.Lock()
		l.pkts = append(l.pkts, r)
		if b, ok := r.body(kind); ok && len(b) >= 4 {
			l.idx[binary.BigEndian.Uint32(b[len(b)-4:])] = true
		}
		if r.rtx {
			l.rtx++
		}
		l.mu.Unlock()
	}
}

func (l *trackLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pkts)
}

func (l *trackLog) viaRTX() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rtx
}

func (l *trackLog) ssrcNow() uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ssrc
}

func (l *trackLog) kindNow() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kind
}

// firstIndex is the index of the first packet received.
func (l *trackLog) firstIndex() uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pkts) == 0 {
		return 0
	}
	b, ok := l.pkts[0].body(l.kind)
	if !ok || len(b) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b[len(b)-4:])
}

// missing lists the indexes from first up to (not including) end that were
// not received.
func (l *trackLog) missing(first, end uint32) []uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []uint32
	for i := first; i < end; i++ {
		if !l.idx[i] {
			out = append(out, i)
		}
	}
	return out
}

func (l *trackLog) snapshot() []readPacket {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.pkts)
}

// sentLog is what the publisher sent on one track, by index.
type sentLog struct {
	track  *webrtc.TrackLocalStaticRTP
	sender *webrtc.RTPSender
	ssrc   uint32

	mu   sync.Mutex
	pkts []*rtp.Packet
}

func (s *sentLog) write(p *rtp.Packet) {
	s.mu.Lock()
	s.pkts = append(s.pkts, p)
	s.mu.Unlock()
	_ = s.track.WriteRTP(p)
}

func (s *sentLog) sentCount() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint32(len(s.pkts))
}

func (s *sentLog) sent(i uint32) *rtp.Packet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pkts[i]
}

// impairedPublisher sends the test's video and audio.
type impairedPublisher struct {
	video, audio *sentLog
	rtxSSRC      uint32 // the video sender's RTX stream
	firstSeq     uint16
	keyReq       atomic.Bool // a PLI arrived: next frame is a keyframe
	// fullRate is set when the sender leaves the announce phase; vGo and
	// aGo are then the indexes of the first video and audio packets sent
	// at full rate.
	fullRate atomic.Bool
	vGo, aGo atomic.Uint32
	started  time.Time
}

// publishImpaired adds a VP8 and an Opus track to pub and negotiates them.
func publishImpaired(t *testing.T, pub *testPeer, firstSeq uint16) *impairedPublisher {
	t.Helper()
	ps := &impairedPublisher{firstSeq: firstSeq}
	for _, c := range []struct {
		log  **sentLog
		mime string
		rate uint32
		ch   uint16
	}{{&ps.video, webrtc.MimeTypeVP8, 90000, 0}, {&ps.audio, webrtc.MimeTypeOpus, 48000, 2}} {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: c.mime, ClockRate: c.rate, Channels: c.ch}, kindOf(c.mime), "impaired")
		if err != nil {
			t.Fatal(err)
		}
		sender, err := pub.pc.AddTrack(tr)
		if err != nil {
			t.Fatal(err)
		}
		go func() { // ends when the connection closes
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					switch p.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						ps.keyReq.Store(true)
					}
				}
			}
		}()
		*c.log = &sentLog{track: tr, sender: sender}
	}
	renegotiate(t, pub)
	for _, l := range []*sentLog{ps.video, ps.audio} {
		enc := l.sender.GetParameters().Encodings
		if len(enc) == 0 {
			t.Fatal("a sender has no encoding")
		}
		l.ssrc = uint32(enc[0].SSRC)
	}
	ps.rtxSSRC = uint32(ps.video.sender.GetParameters().Encodings[0].RTX.SSRC)
	ps.started = time.Now()
	return ps
}

// run sends until ctx ends: until the subscriber has received video
// (sub), a one-packet keyframe and an audio packet every announceEvery;
// then 30 video frames and 50 audio packets a second.
func (ps *impairedPublisher) run(ctx context.Context, sub *trackLog) {
	vseq, aseq := ps.firstSeq, ps.firstSeq
	var vts, ats uint32 = 1_000_000, 2_000_000
	var pid uint16
	var index, aindex uint32
	frame := func(key bool, packets, size int) {
		for k := range packets {
			desc := []byte{0x80, 0x80, 0x80 | byte(pid>>8), byte(pid)} // X, I, 15-bit picture id
			var hdr []byte
			if k == 0 {
				desc[0] |= 0x10 // S: start of partition 0
				if key {
					hdr = []byte{0x00, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01} // 640x480
				} else {
					hdr = []byte{0x01, 0, 0}
				}
			}
			payload := append(desc, hdr...)
			payload = appendMarked(payload, index, size)
			h := rtp.Header{Version: 2, SequenceNumber: vseq, Timestamp: vts, Marker: k == packets-1}
			ps.video.write(&rtp.Packet{Header: h, Payload: payload})
			vseq++
			index++
		}
		vts += 3000
		pid = (pid + 1) & 0x7fff
	}
	audio := func() {
		payload := appendMarked([]byte{0x78}, aindex, 60) // an Opus TOC byte, then the marked body
		ps.audio.write(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: aseq, Timestamp: ats, Marker: aindex == 0}, Payload: payload})
		aseq++
		aindex++
		ats += 960
	}

	announce := time.NewTicker(announceEvery)
	for sub.count() == 0 {
		select {
		case <-ctx.Done():
			announce.Stop()
			return
		case <-announce.C:
			frame(true, 1, 200)
			audio()
		}
	}
	announce.Stop()
	ps.vGo.Store(index)
	ps.aGo.Store(aindex)
	ps.fullRate.Store(true)

	vtick, atick := time.NewTicker(time.Second/30), time.NewTicker(20*time.Millisecond)
	defer vtick.Stop()
	defer atick.Stop()
	for n := 0; ; {
		select {
		case <-ctx.Done():
			return
		case <-atick.C:
			audio()
		case <-vtick.C:
			if ps.keyReq.Swap(false) || n%30 == 0 {
				frame(true, 8, 900)
			} else {
				frame(false, 4, 500)
			}
			n++
		}
	}
}

// presetOutSeq makes the participant's down tracks that have not started
// begin their outgoing sequence numbers at first.
func presetOutSeq(p *Participant, first uint16) {
	for _, d := range p.downTracks() {
		d.mu.Lock()
		if !d.seq.started {
			d.firstSeq = first
		}
		d.mu.Unlock()
	}
}

// fullRateFrom returns the indexes of the first video and audio packets
// sent at full rate (the ends of the logs if not yet there).
func (ps *impairedPublisher) fullRateFrom() (video, audio uint32) {
	if !ps.fullRate.Load() {
		return ps.video.sentCount(), ps.audio.sentCount()
	}
	return ps.vGo.Load(), ps.aGo.Load()
}

// appendMarked appends size bytes made from index i, then i itself.
func appendMarked(b []byte, i uint32, size int) []byte {
	for j := range size {
		b = append(b, byte(i*7+uint32(j)*13+i>>8))
	}
	return binary.BigEndian.AppendUint32(b, i)
}
