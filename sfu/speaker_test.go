package sfu

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// fakeClock is a clock the tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1700000000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// change is one call of the detector's callback, at the fake time elapsed
// since the test began.
type change struct {
	at time.Duration
	id string
}

// speakerRig drives a detector with a fake clock and records its changes.
type speakerRig struct {
	t       *testing.T
	clock   *fakeClock
	d       *speakerDetector
	elapsed time.Duration

	mu      sync.Mutex
	changes []change
}

func newSpeakerRig(t *testing.T) *speakerRig {
	r := &speakerRig{t: t, clock: newFakeClock()}
	r.d = newSpeakerDetector(r.clock.now, 0) // no timer: tests call tick
	r.d.setOnChange(func(id string) {
		r.mu.Lock()
		r.changes = append(r.changes, change{at: r.elapsed, id: id})
		r.mu.Unlock()
	})
	t.Cleanup(r.d.close)
	return r
}

// packetInterval is the sending rate of the synthetic streams: 20 ms Opus.
const packetInterval = 20 * time.Millisecond

// Levels (-dBov) of the synthetic streams.
const (
	lvlSpeech  = 30
	lvlCough   = 3
	lvlQuiet   = 80  // room noise
	lvlSilence = 127 // digital silence
	lvlNone    = 255 // sends no packet at all
)

// play sends, for d, one packet per participant every packetInterval with
// the level levels returns for that participant at that instant (relative to
// the start of this call); lvlNone sends nothing.
func (r *speakerRig) play(d time.Duration, ids []string, levels func(id string, at time.Duration) uint8) {
	for at := time.Duration(0); at < d; at += packetInterval {
		r.clock.advance(packetInterval)
		r.mu.Lock()
		r.elapsed += packetInterval
		r.mu.Unlock()
		for _, id := range ids {
			if l := levels(id, at); l != lvlNone {
				r.d.observe(id, l)
			}
		}
	}
}

// steady plays each participant at one fixed level for d.
func (r *speakerRig) steady(d time.Duration, levels map[string]uint8) {
	ids := make([]string, 0, len(levels))
	for id := range levels {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	r.play(d, ids, func(id string, _ time.Duration) uint8 { return levels[id] })
}

func (r *speakerRig) got() []change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]change(nil), r.changes...)
}

func (r *speakerRig) now() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.elapsed
}

// ids lists the speakers of changes in order.
func ids(cs []change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.id
	}
	return out
}

// expect fails unless the changes so far name exactly want, in order.
func (r *speakerRig) expect(what string, want ...string) []change {
	r.t.Helper()
	got := r.got()
	if !slices.Equal(ids(got), want) {
		r.t.Fatalf("%s: speaker changes %v (%+v), want %q", what, ids(got), got, want)
	}
	return got
}

// within fails unless c happened in [from, to] of fake time.
func within(t *testing.T, what string, c change, from, to time.Duration) {
	t.Helper()
	if c.at < from || c.at > to {
		t.Errorf("%s at %v, want between %v and %v", what, c.at, from, to)
	}
}

func TestSpeakerOneSpeaker(t *testing.T) {
	r := newSpeakerRig(t)
	r.steady(time.Second, map[string]uint8{"a": lvlQuiet, "b": lvlQuiet})
	r.expect("room noise only")

	start := r.now()
	r.steady(2*time.Second, map[string]uint8{"a": lvlSpeech, "b": lvlQuiet})
	cs := r.expect("a talks", "a")
	// Active once half the window's packets are loud (13 of 25, 260 ms),
	// then 200 ms (onsetDelay) later the speaker; decisions come per 50 ms.
	within(t, "a becomes the speaker", cs[0], start+410*time.Millisecond, start+time.Second)

	quiet := r.now()
	r.steady(3*time.Second, map[string]uint8{"a": lvlSilence, "b": lvlQuiet})
	cs = r.expect("a falls silent", "a", "")
	within(t, "nobody speaks", cs[1], quiet+silenceTimeout, quiet+silenceTimeout+time.Second)
}

// TestSpeakerDTX: a speaker whose encoder sends almost nothing in silence
// (one packet per 400 ms) is still dropped, and sparse loud packets alone do
// not make anyone the speaker.
func TestSpeakerDTX(t *testing.T) {
	r := newSpeakerRig(t)
	dtx := func(level uint8) func(string, time.Duration) uint8 {
		return func(_ string, at time.Duration) uint8 {
			if at%(400*time.Millisecond) == 0 {
				return level
			}
			return lvlNone
		}
	}
	r.play(3*time.Second, []string{"a"}, dtx(lvlSpeech))
	r.expect("one loud packet every 400 ms")
	r.steady(time.Second, map[string]uint8{"a": lvlSpeech})
	r.expect("a talks", "a")
	r.play(3*time.Second, []string{"a"}, dtx(lvlSilence))
	r.expect("a is silent with DTX", "a", "")

	// A short burst in DTX silence, from someone whose packet rate is
	// known, is a small share of a window.
	r.play(3*time.Second, []string{"a"}, func(_ string, at time.Duration) uint8 {
		if at >= time.Second && at < time.Second+300*time.Millisecond {
			return lvlCough
		}
		return dtx(lvlSilence)("a", at)
	})
	r.expect("a coughs in DTX silence", "a", "")
}

// TestSpeakerHysteresis: two participants taking turns.
func TestSpeakerHysteresis(t *testing.T) {
	const coughLen = 300 * time.Millisecond
	talk := map[string]uint8{"a": lvlSpeech, "b": lvlQuiet}
	cases := []struct {
		name  string
		other func(r *speakerRig) // what happens after a has the floor
		want  []string
	}{
		{
			name: "cough while the speaker talks",
			other: func(r *speakerRig) {
				r.play(2*time.Second, []string{"a", "b"}, func(id string, at time.Duration) uint8 {
					if id == "a" {
						return lvlSpeech
					}
					if at >= 500*time.Millisecond && at < 500*time.Millisecond+coughLen {
						return lvlCough
					}
					return lvlQuiet
				})
			},
			want: []string{"a"},
		},
		{
			name: "cough in the speaker's pause",
			other: func(r *speakerRig) {
				// a pauses 800 ms (shorter than silenceTimeout); b coughs
				// right after a stops.
				r.play(2*time.Second, []string{"a", "b"}, func(id string, at time.Duration) uint8 {
					pause := at < 800*time.Millisecond
					if id == "a" {
						if pause {
							return lvlSilence
						}
						return lvlSpeech
					}
					if at < coughLen {
						return lvlCough
					}
					return lvlQuiet
				})
			},
			want: []string{"a"},
		},
		{
			name: "talking over the speaker",
			other: func(r *speakerRig) {
				r.steady(2*time.Second, map[string]uint8{"a": lvlSpeech, "b": lvlSpeech})
			},
			want: []string{"a"},
		},
		{
			name: "the other takes a turn",
			other: func(r *speakerRig) {
				r.steady(2*time.Second, map[string]uint8{"a": lvlQuiet, "b": lvlSpeech})
			},
			want: []string{"a", "b"},
		},
		{
			name: "the other talks while the speaker mumbles",
			other: func(r *speakerRig) {
				// a is loud in one packet of four: active share 0.25.
				r.play(2*time.Second, []string{"a", "b"}, func(id string, at time.Duration) uint8 {
					if id == "b" {
						return lvlSpeech
					}
					if (at/packetInterval)%4 == 0 {
						return lvlSpeech
					}
					return lvlQuiet
				})
			},
			want: []string{"a", "b"},
		},
		{
			name: "turns back and forth",
			other: func(r *speakerRig) {
				for range 3 {
					r.steady(1500*time.Millisecond, map[string]uint8{"a": lvlQuiet, "b": lvlSpeech})
					r.steady(1500*time.Millisecond, map[string]uint8{"a": lvlSpeech, "b": lvlQuiet})
				}
			},
			want: []string{"a", "b", "a", "b", "a", "b", "a"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newSpeakerRig(t)
			r.steady(2*time.Second, talk)
			r.expect("a talks", "a")
			from := r.now()
			c.other(r)
			cs := r.expect("then", c.want...)
			for _, ch := range cs[1:] {
				// A takeover needs the newcomer active (~250 ms) and ahead for switchDelay.
				if ch.at-from < switchDelay {
					t.Errorf("%q took the floor %v after the change, sooner than switchDelay", ch.id, ch.at-from)
				}
			}
		})
	}
}

// TestSpeakerNoPackets: when every publisher stops sending, the timer's
// recheck drops the speaker.
func TestSpeakerNoPackets(t *testing.T) {
	r := newSpeakerRig(t)
	r.steady(time.Second, map[string]uint8{"a": lvlSpeech})
	r.expect("a talks", "a")
	for range 4 {
		r.clock.advance(500 * time.Millisecond)
		r.d.tick()
	}
	r.expect("no packets for 2 s", "a", "")
}

// TestSpeakerTimer: the detector's own timer drops a speaker whose packets
// stopped.
func TestSpeakerTimer(t *testing.T) {
	clock := newFakeClock()
	d := newSpeakerDetector(clock.now, time.Millisecond)
	defer d.close()
	got := make(chan string, 10)
	d.setOnChange(func(id string) { got <- id })
	for range 50 {
		clock.advance(packetInterval)
		d.observe("a", lvlSpeech)
	}
	if id := <-got; id != "a" {
		t.Fatalf("speaker %q, want a", id)
	}
	clock.advance(2 * time.Second) // no packets from now on
	select {
	case id := <-got:
		if id != "" {
			t.Fatalf("speaker %q, want nobody", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the recheck timer did not drop the silent speaker")
	}
}

// TestSpeakerLeaves: a participant who leaves is forgotten at once.
func TestSpeakerLeaves(t *testing.T) {
	r := newSpeakerRig(t)
	r.steady(time.Second, map[string]uint8{"a": lvlSpeech, "b": lvlQuiet})
	r.expect("a talks", "a")
	r.d.forget("b")
	r.expect("a listener leaves", "a")
	r.d.forget("a")
	r.expect("the speaker leaves", "a", "")
	r.d.mu.Lock()
	n := len(r.d.levels)
	r.d.mu.Unlock()
	if n != 0 {
		t.Errorf("detector still tracks %d participants after both left", n)
	}
	r.d.forget("nobody")
	r.steady(time.Second, map[string]uint8{"b": lvlSpeech})
	r.expect("b rejoins and talks", "a", "", "b")
}

// TestSpeakerClosed: a closed detector calls nothing and ignores packets.
func TestSpeakerClosed(t *testing.T) {
	r := newSpeakerRig(t)
	r.d.close()
	r.steady(time.Second, map[string]uint8{"a": lvlSpeech})
	r.d.tick()
	r.d.forget("a")
	r.expect("after close")
}

// TestSpeakerCallbackReenters: the callback runs outside the detector's
// lock, so it may call back into it; calls never overlap.
func TestSpeakerCallbackReenters(t *testing.T) {
	clock := newFakeClock()
	d := newSpeakerDetector(clock.now, 0)
	defer d.close()
	var calls []string
	d.setOnChange(func(id string) {
		calls = append(calls, id)
		if id == "a" {
			d.forget("a") // re-entrant: must neither deadlock nor recurse
		}
	})
	for range 50 {
		if len(calls) == 2 {
			break
		}
		clock.advance(packetInterval)
		d.observe("a", lvlSpeech)
	}
	if !slices.Equal(calls, []string{"a", ""}) {
		t.Fatalf("calls %q, want a then nobody", calls)
	}
}

// TestSpeakerConcurrent feeds one detector from several goroutines, as the
// read goroutines of several tracks do, with its timer running.
func TestSpeakerConcurrent(t *testing.T) {
	clock := newFakeClock()
	d := newSpeakerDetector(clock.now, time.Millisecond)
	var inside, overlaps, calls atomic.Int32
	d.setOnChange(func(string) {
		if inside.Add(1) > 1 {
			overlaps.Add(1)
		}
		calls.Add(1)
		time.Sleep(100 * time.Microsecond)
		inside.Add(-1)
	})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("p", g)
			for i := range 2000 {
				level := uint8(lvlQuiet)
				if (i/100)%4 == g {
					level = lvlSpeech
				}
				clock.advance(packetInterval / 4)
				d.observe(id, level)
				if i%50 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			if g == 0 {
				d.forget(id)
			}
		}()
	}
	wg.Wait()
	d.close()
	if overlaps.Load() != 0 {
		t.Errorf("callback overlapped itself %d times", overlaps.Load())
	}
	if calls.Load() < 2 {
		t.Errorf("%d speaker changes; the test meant to cover many", calls.Load())
	}
}

// audioTrack builds a published audio track in a room whose detector uses
// clock, without peer connections.
func audioTrack(t testing.TB, clock *fakeClock, levelID uint8) (*publishedTrack, *speakerDetector) {
	d := newSpeakerDetector(clock.now, 0)
	t.Cleanup(d.close)
	return &publishedTrack{trackEnv: trackEnv{publisher: "pub-1", speakers: d}, kind: "audio", mime: mimeOpus, audioLevelID: levelID}, d
}

func levelHeader(t testing.TB, id uint8, ext []byte) rtp.Header {
	h := rtp.Header{Version: 2, PayloadType: 111, SSRC: 7}
	if ext != nil {
		if err := h.SetExtension(id, ext); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// wireHeader parses a packet header with the given extension block
// (profile, length in words, data) as it arrives from the network.
func wireHeader(t testing.TB, ext ...byte) rtp.Header {
	raw := append([]byte{0x90, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7}, ext...)
	var h rtp.Header
	if _, err := h.Unmarshal(append(raw, 0xfc)); err != nil {
		t.Fatalf("unmarshal % x: %v", raw, err)
	}
	return h
}

// TestObserveAudio: the level is read from the negotiated extension only;
// packets without it, or with a malformed one, are ignored without panicking.
func TestObserveAudio(t *testing.T) {
	const id = 3
	cases := []struct {
		name    string
		levelID uint8 // negotiated id, 0 for none
		h       rtp.Header
		counted bool
		loud    bool
	}{
		{"loud with voice flag", id, levelHeader(t, id, []byte{0x80 | lvlSpeech}), true, true},
		{"loud without voice flag", id, levelHeader(t, id, []byte{lvlSpeech}), true, true},
		{"quiet with voice flag", id, levelHeader(t, id, []byte{0x80 | lvlQuiet}), true, false},
		{"silence", id, levelHeader(t, id, []byte{lvlSilence}), true, false},
		{"threshold counts as loud", id, levelHeader(t, id, []byte{loudLevel}), true, true},
		{"two-byte form, padded", id, levelHeader(t, id, []byte{lvlSpeech, 0, 0}), true, true},
		{"not negotiated", 0, levelHeader(t, id, []byte{lvlSpeech}), false, false},
		{"no extension", id, rtp.Header{Version: 2}, false, false},
		{"another extension id", id, levelHeader(t, id+1, []byte{lvlSpeech}), false, false},
		{"from the wire", id, wireHeader(t, 0xbe, 0xde, 0, 1, id<<4, lvlSpeech, 0, 0), true, true},
		{"two-byte element with no data", id, wireHeader(t, 0x10, 0x00, 0, 1, id, 0, 0, 0), false, false},
		{"padding only", id, wireHeader(t, 0xbe, 0xde, 0, 1, 0, 0, 0, 0), false, false},
		{"RFC 3550 extension", id, wireHeader(t, 0xab, 0xcd, 0, 1, id<<4, lvlSpeech, 0, 0), false, false},
		{"extension flag without extensions", id, rtp.Header{Version: 2, Extension: true}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := newFakeClock()
			tr, d := audioTrack(t, clock, c.levelID)
			h := c.h
			tr.observeAudio(&h)
			d.mu.Lock()
			defer d.mu.Unlock()
			s := d.levels["pub-1"]
			if !c.counted {
				if s != nil {
					t.Fatalf("packet counted: %+v", s)
				}
				return
			}
			if s == nil {
				t.Fatal("packet not counted")
			}
			if s.total[0] != 1 || (s.loud[0] == 1) != c.loud {
				t.Fatalf("counted total %d loud %d, want 1 packet loud=%v", s.total[0], s.loud[0], c.loud)
			}
		})
	}
}

// TestObserveAudioAllocs: the per-packet path allocates nothing once the
// participant is known, including packets that change the speaker.
func TestObserveAudioAllocs(t *testing.T) {
	clock := newFakeClock()
	tr, d := audioTrack(t, clock, 1)
	var n int
	d.setOnChange(func(string) { n++ })
	loud, quiet := levelHeader(t, 1, []byte{lvlSpeech}), levelHeader(t, 1, []byte{lvlSilence})
	tr.observeAudio(&loud)
	i := 0
	allocs := testing.AllocsPerRun(2000, func() {
		clock.advance(packetInterval)
		if (i/150)%2 == 0 {
			tr.observeAudio(&loud)
		} else {
			tr.observeAudio(&quiet)
		}
		i++
	})
	if allocs != 0 {
		t.Errorf("observeAudio allocates %v times per packet", allocs)
	}
	if n < 2 {
		t.Errorf("the speaker changed %d times; the test meant to cover changes", n)
	}
}

// TestRoomForgetsLeavers: Room.leave forgets the participant and the
// callback installed with OnActiveSpeaker hears of it.
func TestRoomForgetsLeavers(t *testing.T) {
	s, err := New(Config{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	room, err := s.Room("speakers")
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	room.speakers.close()
	room.speakers = newSpeakerDetector(clock.now, 0)
	got := make(chan string, 10)
	room.OnActiveSpeaker(func(id string) { got <- id })
	a, err := room.Join("a", func(Signal) {})
	if err != nil {
		t.Fatal(err)
	}
	b, err := room.Join("b", func(Signal) {})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tr := &publishedTrack{trackEnv: trackEnv{publisher: a.id, speakers: a.speakers}, kind: "audio", audioLevelID: 1}
	h := levelHeader(t, 1, []byte{lvlSpeech})
	for range 50 {
		clock.advance(packetInterval)
		tr.observeAudio(&h)
	}
	if id := <-got; id != "a" {
		t.Fatalf("speaker %q, want a", id)
	}
	a.Close()
	select {
	case id := <-got:
		if id != "" {
			t.Fatalf("after a left: speaker %q, want nobody", id)
		}
	default:
		t.Fatal("no change when the speaker left")
	}
	b.Close()
	room.speakers.mu.Lock()
	closed := room.speakers.closed
	room.speakers.mu.Unlock()
	if !closed {
		t.Error("the detector of an empty room is still open")
	}
}

// BenchmarkObserveAudio measures the speaker detector's cost per audio
// packet, in a room of four publishers.
func BenchmarkObserveAudio(b *testing.B) {
	d := newSpeakerDetector(time.Now, speakerRecheck)
	defer d.close()
	d.setOnChange(func(string) {})
	var tracks [4]*publishedTrack
	for i := range tracks {
		tracks[i] = &publishedTrack{trackEnv: trackEnv{publisher: fmt.Sprint("p", i), speakers: d}, kind: "audio", audioLevelID: 1}
	}
	hs := [2]rtp.Header{levelHeader(b, 1, []byte{0x80 | lvlSpeech}), levelHeader(b, 1, []byte{lvlQuiet})}
	for _, tr := range tracks {
		tr.observeAudio(&hs[0])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tracks[i%4].observeAudio(&hs[(i/1000)%2])
	}
}
