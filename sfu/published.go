package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// keyframeInterval is the minimum time between two keyframe requests sent to
// one publisher track, however many subscribers ask.
const keyframeInterval = 500 * time.Millisecond

// sink is what a published track fans its packets out to: down tracks and
// external sinks. writeRTP is called from the track's read goroutine for
// every packet; payload has padding removed and is empty for padding-only
// packets.
type sink interface {
	writeRTP(h *rtp.Header, payload []byte, keyframe bool)
	trackClosed()
}

// publishedTrack is one track a participant sends. Its read goroutine is the
// only writer to its sinks; the sink list is copy-on-write, so the per-packet
// path takes no lock.
type publishedTrack struct {
	owner  *Participant
	remote *webrtc.TrackRemote
	codec  webrtc.RTPCodecParameters
	mime   string
	kind   string

	sinkMu sync.Mutex // serialises changes to sinks
	sinks  atomic.Pointer[[]sink]

	lastKeyReq atomic.Int64 // unix nanoseconds of the last PLI sent
	in         streamCounters
}

func newPublishedTrack(owner *Participant, remote *webrtc.TrackRemote) *publishedTrack {
	codec := remote.Codec()
	t := &publishedTrack{owner: owner, remote: remote, codec: codec, mime: codec.MimeType, kind: kindOf(codec.MimeType)}
	t.in = owner.room.sfu.metrics.counters(t.kind, "in")
	empty := []sink{}
	t.sinks.Store(&empty)
	return t
}

func (t *publishedTrack) info() TrackInfo {
	return TrackInfo{Participant: t.owner.id, TrackID: t.remote.ID(), Kind: t.kind, Codec: t.codec}
}

func (t *publishedTrack) addSink(s sink) {
	t.sinkMu.Lock()
	defer t.sinkMu.Unlock()
	old := *t.sinks.Load()
	next := make([]sink, len(old), len(old)+1)
	copy(next, old)
	next = append(next, s)
	t.sinks.Store(&next)
}

func (t *publishedTrack) removeSink(s sink) {
	t.sinkMu.Lock()
	defer t.sinkMu.Unlock()
	old := *t.sinks.Load()
	next := make([]sink, 0, len(old))
	for _, o := range old {
		if o != s {
			next = append(next, o)
		}
	}
	t.sinks.Store(&next)
}

// run reads the track until it ends and fans every packet out. It returns
// when the publisher's connection closes or the track is removed.
func (t *publishedTrack) run() {
	buf := make([]byte, 1500)
	var h rtp.Header
	dropped := t.owner.room.sfu.metrics.dropped
	for {
		n, _, err := t.remote.Read(buf)
		if err != nil {
			return
		}
		hn, err := h.Unmarshal(buf[:n])
		if err != nil {
			dropped.WithLabelValues("malformed").Inc()
			continue
		}
		payload := buf[hn:n]
		if h.Padding {
			if len(payload) == 0 || int(payload[len(payload)-1]) > len(payload) {
				dropped.WithLabelValues("malformed").Inc()
				continue
			}
			payload = payload[:len(payload)-int(payload[len(payload)-1])]
			h.Padding = false
		}
		t.in.packets.Inc()
		t.in.bytes.Add(float64(len(payload)))
		key := t.kind == "video" && len(payload) > 0 && IsKeyframe(t.mime, payload)
		for _, s := range *t.sinks.Load() {
			s.writeRTP(&h, payload, key)
		}
	}
}

// requestKeyframe asks the publisher for a keyframe unless one was asked for
// within keyframeInterval.
func (t *publishedTrack) requestKeyframe() {
	if t.kind != "video" {
		return
	}
	now := time.Now().UnixNano()
	last := t.lastKeyReq.Load()
	if now-last < int64(keyframeInterval) || !t.lastKeyReq.CompareAndSwap(last, now) {
		return
	}
	t.owner.room.sfu.metrics.keyframeReqs.Inc()
	_ = t.owner.pub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(t.remote.SSRC())}})
}

// close tells every sink the track ended.
func (t *publishedTrack) close() {
	t.sinkMu.Lock()
	old := *t.sinks.Load()
	empty := []sink{}
	t.sinks.Store(&empty)
	t.sinkMu.Unlock()
	for _, s := range old {
		s.trackClosed()
	}
}
