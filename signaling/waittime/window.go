package waittime

import (
	"math/bits"
	"sync"
	"time"
)

// DefaultSpan is the window span used when NewWindow is given a span <= 0,
// and by the zero Window.
const DefaultSpan = time.Hour

// DefaultMaxSamples is the per-kind sample bound used when NewWindow is
// given maxSamples <= 0, and by the zero Window.
const DefaultMaxSamples = 1000

// minRateSpan is the shortest effective span AnswerRate divides by, so that a
// window that has only just seen its first sample does not report an absurd
// rate.
const minRateSpan = time.Second

// Window keeps recent samples of waits (time from joining the queue to being
// answered) and handle times (call durations) over a sliding time window, and
// summarises them as Stats.
//
// A Window is safe for concurrent use. Its memory is bounded: it holds at
// most maxSamples waits and maxSamples handle times, dropping the oldest
// (earliest added) sample of a kind when a new one would exceed the bound.
// It never reads the clock: every time comes from the caller.
//
// The zero Window is ready to use with DefaultSpan and DefaultMaxSamples.
// A Window must not be copied after first use. All methods accept a nil
// *Window (adds are ignored, Snapshot returns zero Stats).
type Window struct {
	span       time.Duration
	maxSamples int

	mu        sync.Mutex
	waits     ring
	handles   ring
	first     time.Time // earliest sample time ever added (either kind)
	seenFirst bool
}

// NewWindow returns an empty Window that summarises samples no older than
// span and keeps at most maxSamples samples of each kind. A span <= 0 means
// DefaultSpan; a maxSamples <= 0 means DefaultMaxSamples.
func NewWindow(span time.Duration, maxSamples int) *Window {
	return &Window{span: span, maxSamples: maxSamples}
}

// Span returns the span the window summarises (after defaulting).
func (w *Window) Span() time.Duration {
	if w == nil || w.span <= 0 {
		return DefaultSpan
	}
	return w.span
}

func (w *Window) limit() int {
	if w.maxSamples <= 0 {
		return DefaultMaxSamples
	}
	return w.maxSamples
}

// AddWait records that a customer was answered at time at after waiting
// wait. A negative wait is recorded as 0.
func (w *Window) AddWait(at time.Time, wait time.Duration) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen(at)
	w.waits.push(sample{at: at, d: max(wait, 0)}, w.limit())
}

// AddHandle records that a call ended at time at after lasting d. A negative
// d is recorded as 0.
func (w *Window) AddHandle(at time.Time, d time.Duration) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen(at)
	w.handles.push(sample{at: at, d: max(d, 0)}, w.limit())
}

func (w *Window) seen(at time.Time) {
	if !w.seenFirst || at.Before(w.first) {
		w.first = at
		w.seenFirst = true
	}
}

// Snapshot drops the samples older than now-span and summarises the ones
// with times in [now-span, now]. Samples stamped after now are kept but not
// counted until now catches up with them.
//
// AnswerRate is Answered divided by the effective span, which is the smaller
// of span and the time since the earliest sample ever added, but at least
// one second: a window that has only been observing for five minutes divides
// by five minutes, not by its full span.
func (w *Window) Snapshot(now time.Time) Stats {
	if w == nil {
		return Stats{}
	}
	span := w.Span()
	cutoff := now.Add(-span)

	w.mu.Lock()
	defer w.mu.Unlock()

	var s Stats
	s.Answered, s.AvgWait = w.waits.summarise(cutoff, now)
	s.Handled, s.AvgHandle = w.handles.summarise(cutoff, now)
	if s.Answered > 0 {
		eff := span
		if observed := now.Sub(w.first); observed < eff {
			eff = observed
		}
		eff = max(eff, minRateSpan)
		s.AnswerRate = float64(s.Answered) / eff.Seconds()
	}
	return s
}

// sample is one observation: something that lasted d, recorded at at.
type sample struct {
	at time.Time
	d  time.Duration // never negative
}

// ring is a FIFO of samples in insertion order, backed by a circular buffer
// that grows on demand up to the bound given to push.
type ring struct {
	buf  []sample
	head int // index of the oldest sample
	n    int // number of samples held
}

func (r *ring) at(i int) *sample { return &r.buf[(r.head+i)%len(r.buf)] }

// push appends s, evicting the oldest sample if the ring already holds limit
// samples.
func (r *ring) push(s sample, limit int) {
	limit = max(limit, 1)
	for r.n >= limit {
		r.pop()
	}
	if r.n == len(r.buf) {
		grown := make([]sample, min(limit, max(2*len(r.buf), 16)))
		for i := range r.n {
			grown[i] = *r.at(i)
		}
		r.buf, r.head = grown, 0
	}
	*r.at(r.n) = s
	r.n++
}

func (r *ring) pop() {
	*r.at(0) = sample{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
}

// summarise drops samples from the front that are older than cutoff and
// returns the count and mean of the samples within [cutoff, now]. Samples
// added out of order stay until they reach the front or are evicted, but are
// never counted once they are older than cutoff.
func (r *ring) summarise(cutoff, now time.Time) (count int, mean time.Duration) {
	for r.n > 0 && r.at(0).at.Before(cutoff) {
		r.pop()
	}
	// 128-bit sum: samples are non-negative, so the sum of n of them is
	// below n*2^63 and the mean always fits back in a Duration.
	var hi, lo uint64
	for i := range r.n {
		s := r.at(i)
		if s.at.Before(cutoff) || s.at.After(now) {
			continue
		}
		var carry uint64
		lo, carry = bits.Add64(lo, uint64(s.d), 0)
		hi += carry
		count++
	}
	if count == 0 {
		return 0, 0
	}
	q, _ := bits.Div64(hi, lo, uint64(count))
	return count, time.Duration(q)
}
