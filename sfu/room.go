package sfu

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// TrackInfo describes a published track to a TrackSink factory.
type TrackInfo struct {
	Participant string // the publisher's participant id
	TrackID     string
	Kind        string // "audio" or "video"
	Codec       webrtc.RTPCodecParameters
	// RequestKeyframe asks the publisher for a keyframe of the layer the
	// sink receives (for a sink that lost packets, or whose layer changed),
	// at most once per keyframeInterval with the SFU's own requests. It
	// does nothing for audio. It may be called from any goroutine, and
	// returns at once.
	RequestKeyframe func()
}

// TrackSink receives every packet of one published track, for example to
// record it. WriteRTP is called from the goroutine that received the
// packet (the media socket's reader, or the layer's pion reader), once per
// packet in arrival order, never concurrently for one layer (padding removed; packets of padding alone are not
// passed); of a simulcast track, only the packets of its highest layer
// present are passed. It must not block, and must not keep h or payload
// after it returns. Close is called once when the track ends (its
// publisher stops sending it, leaves, or the room closes), after the last
// WriteRTP; when the track ends because its publisher or room closes, that
// is before Participant.Close or Room.Close returns.
type TrackSink interface {
	WriteRTP(h *rtp.Header, payload []byte)
	Close()
}

// SenderReporter is what a TrackSink implements, besides, to be told the
// sender reports the publisher sends for the track: for each layer, with
// that layer's SSRC (the SSRC of the packets WriteRTP gets while it is the
// layer passed on), the NTP time and the RTP time it pairs. They map the
// track's RTP timestamps to the publisher's wall clock. SenderReport is
// called on the layer's RTCP goroutine, not the packets', until the sink
// is closed; it must not block.
type SenderReporter interface {
	SenderReport(ssrc uint32, ntpTime uint64, rtpTime uint32)
}

// Room is a set of participants who receive each other's tracks.
type Room struct {
	sfu *SFU
	id  string
	log *slog.Logger

	mu           sync.Mutex
	participants map[string]*Participant
	sinkFactory  func(TrackInfo) TrackSink
	closed       bool

	speakers *speakerDetector // nil: no speaker detection
}

func newRoom(s *SFU, id string) *Room {
	return &Room{sfu: s, id: id, log: s.log.With("room", id), participants: make(map[string]*Participant),
		speakers: newSpeakerDetector(time.Now, speakerRecheck)}
}

// ID is the room's id.
func (r *Room) ID() string { return r.id }

// SetSinkFactory installs f, called for each track published from now on;
// a nil TrackSink from f means that track is not sunk. f is called on the
// goroutine pion announced the new track on, before its first packet is
// passed on, so it must return quickly.
func (r *Room) SetSinkFactory(f func(TrackInfo) TrackSink) {
	r.mu.Lock()
	r.sinkFactory = f
	r.mu.Unlock()
}

// OnActiveSpeaker installs f, called with the participant id of the room's
// dominant speaker whenever it changes, and with "" when nobody speaks (after
// about 1.5 s of silence, or when the speaker leaves). The speaker is found
// from the RFC 6464 audio levels publishers send; see speaker.go. f is called
// without SFU locks held, one call at a time and in order, but possibly from
// a track's packet goroutine: it must return quickly (hand the change off)
// and must not block. It is not called once the room is closed.
func (r *Room) OnActiveSpeaker(f func(participantID string)) {
	if r.speakers != nil {
		r.speakers.setOnChange(f)
	}
}

// Join adds a participant with id (unique in the room) and creates its two
// peer connections. onSignal receives the offers for its "sub" connection and
// the SFU's ICE candidates; it is called from SFU goroutines, possibly with
// SFU locks held, so it must hand the signal off (e.g. to a send queue) and
// never call back into the participant. Once Close has begun it is no longer
// called.
func (r *Room) Join(id string, onSignal func(Signal)) (*Participant, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	if _, dup := r.participants[id]; dup {
		r.mu.Unlock()
		return nil, fmt.Errorf("sfu: participant %q already in room", id)
	}
	p, err := newParticipant(r, id, onSignal)
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	r.participants[id] = p
	var existing []*publishedTrack
	for _, o := range r.participants {
		if o != p {
			existing = append(existing, o.publishedTracks()...)
		}
	}
	r.mu.Unlock()
	r.sfu.metrics.participants.Inc()
	for _, t := range existing {
		p.subscribe(t)
	}
	return p, nil
}

// trackPublished subscribes every participant but from, its publisher, to
// t and attaches the room's sink, if any.
func (r *Room) trackPublished(from *Participant, t *publishedTrack) {
	others := r.othersThan(from)
	r.mu.Lock()
	f := r.sinkFactory
	r.mu.Unlock()
	if f != nil {
		if s := f(t.info()); s != nil {
			t.addSink(newExternalSink(s, t))
		}
	}
	for _, o := range others {
		o.subscribe(t)
	}
}

// trackEnded removes t, published by from, from every subscriber.
func (r *Room) trackEnded(from *Participant, t *publishedTrack) {
	for _, o := range r.othersThan(from) {
		o.unsubscribe(t)
	}
}

// othersThan lists the room's participants other than p.
func (r *Room) othersThan(p *Participant) []*Participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	others := make([]*Participant, 0, len(r.participants))
	for _, o := range r.participants {
		if o != p {
			others = append(others, o)
		}
	}
	return others
}

// leave removes p; the room closes itself when the last participant leaves.
func (r *Room) leave(p *Participant) {
	r.mu.Lock()
	if r.participants[p.id] != p {
		r.mu.Unlock()
		return
	}
	delete(r.participants, p.id)
	empty := len(r.participants) == 0
	if empty {
		r.closed = true
	}
	r.mu.Unlock()
	if r.speakers != nil {
		if empty {
			r.speakers.close()
		} else {
			r.speakers.forget(p.id)
		}
	}
	r.sfu.metrics.participants.Dec()
	if empty {
		r.sfu.removeRoom(r)
	}
}

// Close disconnects every participant and removes the room.
func (r *Room) Close() {
	r.mu.Lock()
	r.closed = true
	ps := make([]*Participant, 0, len(r.participants))
	for _, p := range r.participants {
		ps = append(ps, p)
	}
	r.mu.Unlock()
	if r.speakers != nil {
		r.speakers.close()
	}
	for _, p := range ps {
		p.Close()
	}
	r.sfu.removeRoom(r)
}

// externalSink adapts a TrackSink to the internal sink interface. It
// passes on the highest layer being received.
type externalSink struct {
	s  TrackSink
	sr SenderReporter // s, if it wants sender reports; else nil
	t  *publishedTrack
}

func newExternalSink(s TrackSink, t *publishedTrack) *externalSink {
	sr, _ := s.(SenderReporter)
	return &externalSink{s: s, sr: sr, t: t}
}

func (e *externalSink) writeRTP(layer int, h *rtp.Header, payload []byte, _ bool, _ time.Time) {
	if len(payload) > 0 && layer == e.t.topLayer() {
		e.s.WriteRTP(h, payload)
	}
}

func (e *externalSink) layersChanged() {}

func (e *externalSink) trackClosed() { e.s.Close() }
