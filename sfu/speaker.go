package sfu

import (
	"sync"
	"time"

	"github.com/pion/rtp"
)

// Active speaker detection.
//
// Every audio packet that carries the RFC 6464 audio level header extension
// feeds its room's speakerDetector with the packet's level (-dBov: 0 is the
// loudest, 127 silence). Per participant the detector counts, in
// speakerBuckets time buckets of speakerBucket each (half a second in all),
// the packets it received and how many of them were loud (level <=
// loudLevel, i.e. at least -50 dBov). A participant's activity is the share
// of loud packets in that window. The denominator is the most packets the
// participant has ever sent in one window (at least minWindowPackets), not
// the packets in this window: with Opus DTX a sender sends one packet per
// 400 ms in silence, and a few loud packets among those must not count as
// talking all the time. The share of loud packets,
// rather than an average loudness, makes the decision about who talks
// continuously, not who is loudest: a loud cough counts for no more than its
// length, and the sender's gain does not matter. The voice activity flag
// (bit 7) is ignored: not every sender sets it.
//
// The decision is taken at most once per bucket, with hysteresis:
//   - a participant is active when its activity is at least activeShare;
//   - with nobody speaking, the most active participant becomes the speaker
//     after being active for onsetDelay;
//   - another participant takes the floor from the speaker only after being
//     active and more active than the speaker by switchMargin continuously
//     for switchDelay, so a cough does not steal it and talking over the
//     speaker at the same activity does not either;
//   - a speaker who has not been active for silenceTimeout is dropped, and
//     then nobody is the speaker;
//   - a participant who leaves is forgotten at once.
//
// While somebody is the speaker a timer re-runs the decision every
// speakerRecheck, so that the speaker is dropped even when no packets arrive
// at all (every publisher stopped sending audio).
const (
	speakerBucket    = 50 * time.Millisecond
	speakerBuckets   = 10
	loudLevel        = 50 // -dBov; quieter packets count as silence
	minWindowPackets = 10
	activeShare      = 0.5
	switchMargin     = 0.2
	onsetDelay       = 200 * time.Millisecond
	switchDelay      = 400 * time.Millisecond
	silenceTimeout   = 1500 * time.Millisecond
	speakerRecheck   = 250 * time.Millisecond
)

// observeAudio is called for every audio packet a published track receives.
// It reads the audio level, if the track negotiated the extension, and feeds
// the room's speaker detector. It allocates nothing per packet.
func (t *publishedTrack) observeAudio(h *rtp.Header) {
	if t.audioLevelID == 0 {
		return
	}
	ext := h.GetExtension(t.audioLevelID)
	if len(ext) == 0 {
		return // no level in this packet, or an empty (malformed) extension
	}
	if t.speakers == nil {
		return
	}
	t.speakers.observe(t.publisher, ext[0]&0x7f)
}

// speakerDetector decides a room's dominant speaker; see the comment above.
// Its callback is called outside the detector's lock, by one goroutine at a
// time, in order, and only when the speaker changes.
type speakerDetector struct {
	now     func() time.Time
	recheck time.Duration // 0: no timer (tests drive rechecks)
	start   time.Time     // bucket 0 begins here

	mu        sync.Mutex
	levels    map[string]*speakerLevels // by participant id
	evaluated int64                     // bucket of the last decision
	current   string                    // the speaker, "" for nobody
	candidate string                    // who is about to take the floor
	since     time.Time                 // since when candidate has qualified
	onChange  func(participantID string)
	told      string // what onChange was last called with
	notifying bool   // a goroutine is calling onChange
	timer     *time.Timer
	armed     bool // timer is pending
	closed    bool
}

// speakerLevels is one participant's recent packets, in a ring of buckets.
type speakerLevels struct {
	loud, total [speakerBuckets]uint32
	head        int64     // bucket index of the newest bucket
	peak        uint32    // most packets seen in one window
	lastActive  time.Time // when a decision last found it active
}

func newSpeakerDetector(now func() time.Time, recheck time.Duration) *speakerDetector {
	return &speakerDetector{now: now, recheck: recheck, start: now(), levels: make(map[string]*speakerLevels)}
}

// bucket is the index of the bucket holding instant t.
func (d *speakerDetector) bucket(t time.Time) int64 {
	return max(0, int64(t.Sub(d.start)/speakerBucket))
}

// observe records one packet of participant id with audio level (-dBov).
func (d *speakerDetector) observe(id string, level uint8) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	now := d.now()
	idx := d.bucket(now)
	s := d.levels[id]
	if s == nil {
		s = &speakerLevels{head: idx}
		d.levels[id] = s
	}
	s.add(idx, level <= loudLevel)
	if idx > d.evaluated {
		d.decideLocked(now, idx)
	}
	d.unlockAndNotify()
}

// forget drops a participant that left; if it was the speaker, nobody is.
// speaker returns the current speaker's participant id ("" for nobody).
func (d *speakerDetector) speaker() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.current
}

func (d *speakerDetector) forget(id string) {
	d.mu.Lock()
	delete(d.levels, id)
	if d.candidate == id {
		d.candidate = ""
	}
	if d.current == id {
		d.current = ""
	}
	d.unlockAndNotify()
}

// setOnChange installs f, called with the speaker's participant id ("" for
// nobody) whenever it changes.
func (d *speakerDetector) setOnChange(f func(participantID string)) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.onChange = f
	d.unlockAndNotify()
}

// close stops the detector: no more decisions, callbacks or timer.
func (d *speakerDetector) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.onChange = nil
	clear(d.levels)
	if d.timer != nil {
		d.timer.Stop()
	}
}

// tick re-runs the decision without a packet (the timer's job).
func (d *speakerDetector) tick() {
	d.mu.Lock()
	d.armed = false
	if d.closed {
		d.mu.Unlock()
		return
	}
	now := d.now()
	if idx := d.bucket(now); idx > d.evaluated {
		d.decideLocked(now, idx)
	}
	d.armLocked()
	d.unlockAndNotify()
}

// decideLocked updates the speaker at now (in bucket idx). d.mu is held.
func (d *speakerDetector) decideLocked(now time.Time, idx int64) {
	d.evaluated = idx
	var best string
	bestAct, curAct := float32(-1), float32(0)
	for id, s := range d.levels {
		a := s.activity(idx)
		if a >= activeShare {
			s.lastActive = now
		}
		if id == d.current {
			curAct = a
			continue
		}
		// Ties go to the smaller id so decisions do not depend on map order.
		if a > bestAct || (a == bestAct && id < best) {
			best, bestAct = id, a
		}
	}
	if d.current != "" {
		if s := d.levels[d.current]; s == nil || now.Sub(s.lastActive) >= silenceTimeout {
			d.current, curAct = "", 0
		}
	}
	if best == "" || bestAct < activeShare || (d.current != "" && bestAct < curAct+switchMargin) {
		d.candidate = ""
	} else {
		if d.candidate != best {
			d.candidate, d.since = best, now
		}
		delay := switchDelay
		if d.current == "" {
			delay = onsetDelay
		}
		if now.Sub(d.since) >= delay {
			d.current, d.candidate = best, ""
		}
	}
	d.armLocked()
}

// armLocked starts the recheck timer while somebody is the speaker. d.mu is held.
func (d *speakerDetector) armLocked() {
	if d.current == "" || d.armed || d.recheck <= 0 || d.closed {
		return
	}
	d.armed = true
	if d.timer == nil {
		d.timer = time.AfterFunc(d.recheck, d.tick)
	} else {
		d.timer.Reset(d.recheck)
	}
}

// unlockAndNotify releases d.mu, first telling onChange about the current
// speaker if it has not been told yet. The callback runs without d.mu. Only
// one goroutine notifies at a time and keeps going until onChange has seen
// the latest speaker, so calls never overlap nor go out of order; a
// goroutine that finds another notifying leaves its change to that one.
// d.mu is held on entry.
func (d *speakerDetector) unlockAndNotify() {
	if d.notifying {
		d.mu.Unlock()
		return
	}
	d.notifying = true
	for d.onChange != nil && d.current != d.told {
		f, id := d.onChange, d.current
		d.told = id
		d.mu.Unlock()
		f(id)
		d.mu.Lock()
	}
	d.notifying = false
	d.mu.Unlock()
}

// add counts one packet in bucket idx.
func (s *speakerLevels) add(idx int64, loud bool) {
	s.advance(idx)
	b := idx % speakerBuckets
	s.total[b]++
	if loud {
		s.loud[b]++
	}
}

// advance makes idx the newest bucket, emptying the ones it moves past.
func (s *speakerLevels) advance(idx int64) {
	if idx <= s.head {
		return
	}
	if idx-s.head >= speakerBuckets {
		s.loud, s.total = [speakerBuckets]uint32{}, [speakerBuckets]uint32{}
	} else {
		for i := s.head + 1; i <= idx; i++ {
			s.loud[i%speakerBuckets], s.total[i%speakerBuckets] = 0, 0
		}
	}
	s.head = idx
}

// activity is the share of loud packets in the window ending with bucket
// idx, out of the most packets the participant has sent in a window.
func (s *speakerLevels) activity(idx int64) float32 {
	s.advance(idx)
	var loud, total uint32
	for i := range speakerBuckets {
		loud += s.loud[i]
		total += s.total[i]
	}
	s.peak = max(s.peak, total)
	return float32(loud) / float32(max(s.peak, minWindowPackets))
}
