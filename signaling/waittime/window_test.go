package waittime

import (
	"math"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)

func TestWindowEmpty(t *testing.T) {
	w := NewWindow(time.Hour, 10)
	if got := w.Snapshot(t0); got != (Stats{}) {
		t.Errorf("empty window: %+v, want zero Stats", got)
	}
}

func TestWindowAverages(t *testing.T) {
	w := NewWindow(time.Hour, 100)
	w.AddWait(t0, 1*time.Minute)
	w.AddWait(t0.Add(time.Minute), 2*time.Minute)
	w.AddWait(t0.Add(2*time.Minute), 6*time.Minute)
	w.AddHandle(t0.Add(30*time.Second), 4*time.Minute)
	w.AddHandle(t0.Add(90*time.Second), 5*time.Minute)

	got := w.Snapshot(t0.Add(150 * time.Second))
	want := Stats{
		Answered:   3,
		AvgWait:    3 * time.Minute,
		Handled:    2,
		AvgHandle:  4*time.Minute + 30*time.Second,
		AnswerRate: 3.0 / 150, // young window: 150 s since the first sample
	}
	if got != want {
		t.Errorf("Snapshot = %+v\nwant       %+v", got, want)
	}
}

func TestWindowExpiry(t *testing.T) {
	w := NewWindow(30*time.Minute, 100)
	w.AddWait(t0, 10*time.Minute)
	w.AddWait(t0.Add(10*time.Minute), 2*time.Minute)
	w.AddHandle(t0, time.Hour)
	w.AddHandle(t0.Add(20*time.Minute), 3*time.Minute)

	// Exactly span after the first samples: they are still in.
	s := w.Snapshot(t0.Add(30 * time.Minute))
	if s.Answered != 2 || s.Handled != 2 {
		t.Fatalf("at the boundary: %+v, want 2 waits and 2 handles", s)
	}

	// One nanosecond later the first samples are gone.
	s = w.Snapshot(t0.Add(30*time.Minute + 1))
	if s.Answered != 1 || s.AvgWait != 2*time.Minute || s.Handled != 1 || s.AvgHandle != 3*time.Minute {
		t.Errorf("after expiry: %+v, want 1 wait of 2m and 1 handle of 3m", s)
	}

	// Much later everything is gone, and stays gone.
	s = w.Snapshot(t0.Add(24 * time.Hour))
	if s != (Stats{}) {
		t.Errorf("after everything expired: %+v, want zero Stats", s)
	}
	if w.waits.n != 0 || w.handles.n != 0 {
		t.Errorf("expired samples still held: %d waits, %d handles", w.waits.n, w.handles.n)
	}
}

func TestWindowOutOfOrderAndFuture(t *testing.T) {
	w := NewWindow(30*time.Minute, 100)
	w.AddWait(t0.Add(20*time.Minute), time.Minute)
	w.AddWait(t0, 3*time.Minute) // reported late, older than the previous one
	w.AddWait(t0.Add(time.Hour), 9*time.Minute)

	// At t0+25m both early samples count; the future one does not.
	s := w.Snapshot(t0.Add(25 * time.Minute))
	if s.Answered != 2 || s.AvgWait != 2*time.Minute {
		t.Errorf("at t0+25m: %+v, want 2 waits averaging 2m", s)
	}
	// At t0+40m the late-reported sample is too old, although it is not
	// at the front of the buffer.
	s = w.Snapshot(t0.Add(40 * time.Minute))
	if s.Answered != 1 || s.AvgWait != time.Minute {
		t.Errorf("at t0+40m: %+v, want 1 wait of 1m", s)
	}
	// At t0+1h the future sample has come due.
	s = w.Snapshot(t0.Add(time.Hour))
	if s.Answered != 1 || s.AvgWait != 9*time.Minute {
		t.Errorf("at t0+1h: %+v, want 1 wait of 9m", s)
	}
}

func TestWindowMaxSamples(t *testing.T) {
	const limit = 3
	w := NewWindow(time.Hour, limit)
	for i := range 10 {
		at := t0.Add(time.Duration(i) * time.Second)
		w.AddWait(at, time.Duration(i)*time.Minute)
		w.AddHandle(at, time.Duration(i)*time.Minute)
		if w.waits.n > limit || len(w.waits.buf) > limit || w.handles.n > limit || len(w.handles.buf) > limit {
			t.Fatalf("after %d samples: holding %d/%d waits and %d/%d handles, limit %d",
				i+1, w.waits.n, len(w.waits.buf), w.handles.n, len(w.handles.buf), limit)
		}
	}
	// The newest three (7, 8, 9 minutes) survive.
	s := w.Snapshot(t0.Add(10 * time.Second))
	if s.Answered != 3 || s.AvgWait != 8*time.Minute || s.Handled != 3 || s.AvgHandle != 8*time.Minute {
		t.Errorf("Snapshot = %+v, want the 3 newest samples averaging 8m", s)
	}
}

func TestWindowRingWrapsAndGrows(t *testing.T) {
	// Interleave adds and expiry so the ring wraps around and then has to
	// grow while wrapped; the averages must follow exactly.
	w := NewWindow(10*time.Second, 1000)
	var want []time.Duration
	for i := range 200 {
		at := t0.Add(time.Duration(i) * time.Second)
		d := time.Duration(i%7) * time.Second
		w.AddWait(at, d)
		want = append(want, d)
		if len(want) > 11 { // [at-10s, at] holds 11 one-second-spaced samples
			want = want[1:]
		}
		var sum time.Duration
		for _, x := range want {
			sum += x
		}
		s := w.Snapshot(at)
		if s.Answered != len(want) || s.AvgWait != sum/time.Duration(len(want)) {
			t.Fatalf("step %d: %d waits averaging %v, want %d averaging %v",
				i, s.Answered, s.AvgWait, len(want), sum/time.Duration(len(want)))
		}
	}
}

func TestWindowAnswerRate(t *testing.T) {
	t.Run("young", func(t *testing.T) {
		w := NewWindow(time.Hour, 1000)
		for i := range 10 {
			w.AddWait(t0.Add(time.Duration(i)*10*time.Second), 0)
		}
		// Observed for 120 s, not for the whole hour.
		if got, want := w.Snapshot(t0.Add(120*time.Second)).AnswerRate, 10.0/120; got != want {
			t.Errorf("AnswerRate = %v, want %v", got, want)
		}
	})
	t.Run("first sample may be a handle time", func(t *testing.T) {
		w := NewWindow(time.Hour, 1000)
		w.AddHandle(t0, time.Minute)
		w.AddWait(t0.Add(50*time.Second), 0)
		if got, want := w.Snapshot(t0.Add(100*time.Second)).AnswerRate, 1.0/100; got != want {
			t.Errorf("AnswerRate = %v, want %v", got, want)
		}
	})
	t.Run("at least one second", func(t *testing.T) {
		w := NewWindow(time.Hour, 1000)
		w.AddWait(t0, 0)
		w.AddWait(t0, 0)
		if got := w.Snapshot(t0).AnswerRate; got != 2 {
			t.Errorf("AnswerRate = %v, want 2 (2 answers over the 1 s minimum)", got)
		}
	})
	t.Run("full", func(t *testing.T) {
		w := NewWindow(time.Hour, 1000)
		for i := range 180 { // one answer a minute for three hours
			w.AddWait(t0.Add(time.Duration(i)*time.Minute), time.Minute)
		}
		now := t0.Add(179 * time.Minute)
		s := w.Snapshot(now)
		// [now-1h, now] holds 61 samples; the span caps the divisor.
		if s.Answered != 61 || s.AnswerRate != 61.0/3600 {
			t.Errorf("Snapshot = %+v, want 61 answers at %v/s", s, 61.0/3600)
		}
	})
	t.Run("no answers", func(t *testing.T) {
		w := NewWindow(time.Hour, 1000)
		w.AddHandle(t0, time.Minute)
		if got := w.Snapshot(t0.Add(time.Minute)).AnswerRate; got != 0 {
			t.Errorf("AnswerRate = %v with no answers, want 0", got)
		}
	})
}

func TestWindowOddInputs(t *testing.T) {
	t.Run("negative durations count as zero", func(t *testing.T) {
		w := NewWindow(time.Hour, 10)
		w.AddWait(t0, -time.Minute)
		w.AddWait(t0, 2*time.Minute)
		w.AddHandle(t0, -time.Hour)
		s := w.Snapshot(t0)
		if s.Answered != 2 || s.AvgWait != time.Minute || s.Handled != 1 || s.AvgHandle != 0 {
			t.Errorf("Snapshot = %+v", s)
		}
	})
	t.Run("huge durations do not overflow", func(t *testing.T) {
		w := NewWindow(time.Hour, 10)
		for range 5 {
			w.AddWait(t0, math.MaxInt64)
		}
		if got := w.Snapshot(t0).AvgWait; got != math.MaxInt64 {
			t.Errorf("AvgWait = %v, want %v", got, time.Duration(math.MaxInt64))
		}
	})
	t.Run("defaults", func(t *testing.T) {
		for _, w := range []*Window{NewWindow(0, 0), NewWindow(-time.Hour, -5), new(Window)} {
			if w.Span() != DefaultSpan {
				t.Errorf("Span() = %v, want %v", w.Span(), DefaultSpan)
			}
			for i := range DefaultMaxSamples + 10 {
				w.AddWait(t0.Add(time.Duration(i)*time.Millisecond), time.Second)
			}
			s := w.Snapshot(t0.Add(time.Minute))
			if s.Answered != DefaultMaxSamples || s.AvgWait != time.Second {
				t.Errorf("Snapshot = %+v, want %d answers of 1s", s, DefaultMaxSamples)
			}
		}
	})
	t.Run("nil window", func(t *testing.T) {
		var w *Window
		w.AddWait(t0, time.Minute)
		w.AddHandle(t0, time.Minute)
		if s := w.Snapshot(t0); s != (Stats{}) {
			t.Errorf("nil Window Snapshot = %+v", s)
		}
		if w.Span() != DefaultSpan {
			t.Errorf("nil Window Span() = %v", w.Span())
		}
	})
}

func TestWindowConcurrent(t *testing.T) {
	const (
		writers = 8
		each    = 200
	)
	w := NewWindow(time.Hour, writers*each)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range each {
				at := t0.Add(time.Duration(g*each+i) * time.Millisecond)
				w.AddWait(at, time.Minute)
				w.AddHandle(at, 2*time.Minute)
			}
		}()
		go func() {
			defer wg.Done()
			for i := range each {
				s := w.Snapshot(t0.Add(time.Duration(i) * time.Millisecond))
				if s.Answered > 0 && s.AvgWait != time.Minute {
					t.Errorf("AvgWait = %v mid-flight, want 1m", s.AvgWait)
					return
				}
			}
		}()
	}
	wg.Wait()
	s := w.Snapshot(t0.Add(time.Minute))
	if s.Answered != writers*each || s.Handled != writers*each ||
		s.AvgWait != time.Minute || s.AvgHandle != 2*time.Minute {
		t.Errorf("Snapshot = %+v, want %d of each", s, writers*each)
	}
}
