package rtpstat

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// feed adds packets with the given sequence numbers, one every 20 ms,
// each with the timestamp of its sequence number (960 ticks of 48 kHz
// apart), so that arrival keeps pace with the timestamps: no jitter.
func feed(s *Stream, seqs ...uint16) {
	for i, q := range seqs {
		s.Add(Packet{Seq: q, TS: uint32(q) * 960, Arrival: t0.Add(time.Duration(i) * 20 * time.Millisecond), Size: 100})
	}
}

func TestLossAndOrder(t *testing.T) {
	cases := []struct {
		name                     string
		seqs                     []uint16
		received, expected, lost int64
		dups, late               int64
	}{
		{"in order", []uint16{10, 11, 12, 13}, 4, 4, 0, 0, 0},
		{"gap", []uint16{10, 11, 14, 15}, 4, 6, 2, 0, 0},
		{"reordered, nothing lost", []uint16{10, 12, 11, 13}, 4, 4, 0, 0, 1},
		{"duplicate", []uint16{10, 11, 11, 12}, 3, 3, 0, 1, 0},
		{"wraparound", []uint16{65533, 65534, 65535, 0, 1, 2}, 6, 6, 0, 0, 0},
		{"wraparound with loss", []uint16{65534, 1, 2}, 3, 5, 2, 0, 0},
		{"reordered across the wrap", []uint16{65535, 1, 0, 2}, 4, 4, 0, 0, 1},
		{"late packet older than the first", []uint16{5, 6, 3, 7}, 4, 5, 1, 0, 1},
		{"older than the first, across the wrap", []uint16{1, 2, 65535, 3}, 4, 5, 1, 0, 1},
		{"duplicate after the wrap", []uint16{65535, 0, 65535, 1}, 3, 3, 0, 1, 0},
		{"long gap", []uint16{100, 5100, 5101}, 3, 5002, 4999, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewStream(48000)
			feed(s, c.seqs...)
			got := s.Summary()
			if got.Received != c.received || got.Expected != c.expected || got.Lost != c.lost || got.Duplicates != c.dups || got.Late != c.late {
				t.Errorf("received %d expected %d lost %d dups %d late %d; want %d %d %d %d %d",
					got.Received, got.Expected, got.Lost, got.Duplicates, got.Late, c.received, c.expected, c.lost, c.dups, c.late)
			}
			if got.Bytes != 100*got.Received {
				t.Errorf("bytes %d for %d packets of 100", got.Bytes, got.Received)
			}
		})
	}
}

// TestLongStream runs a stream across several wraparounds with every 100th
// packet lost and every 50th pair swapped.
func TestLongStream(t *testing.T) {
	s := NewStream(90000)
	const n = 200_000
	var seqs []uint16
	for i := 0; i < n; i++ {
		seqs = append(seqs, uint16(40000+i))
	}
	for i := 0; i+1 < n; i += 50 {
		seqs[i], seqs[i+1] = seqs[i+1], seqs[i]
	}
	sent := 0
	for i, q := range seqs {
		if i%100 == 7 {
			continue
		}
		s.Add(Packet{Seq: q, TS: uint32(i) * 3000, Arrival: t0.Add(time.Duration(i) * time.Second / 30)})
		sent++
	}
	got := s.Summary()
	if got.Received != int64(sent) || got.Expected != n || got.Lost != n/100 || got.Duplicates != 0 {
		t.Errorf("received %d of %d sent, expected %d (want %d), lost %d (want %d), dups %d", got.Received, sent, got.Expected, n, got.Lost, n/100, got.Duplicates)
	}
	if got.Late != n/50 {
		t.Errorf("late %d, want %d", got.Late, n/50)
	}
}

func TestJitter(t *testing.T) {
	// Arrival exactly on the timestamps' clock: no jitter.
	s := NewStream(48000)
	feed(s, 1, 2, 3, 4, 5, 6, 7, 8)
	if j := s.Summary().Jitter; j != 0 {
		t.Errorf("paced stream: jitter %v, want 0", j)
	}
	// Every other packet 10 ms late: each transit difference is 10 ms, so
	// the estimate converges to 10 ms (J += (|D| - J)/16).
	s = NewStream(48000)
	for i := range 2000 {
		late := time.Duration(i%2) * 10 * time.Millisecond
		s.Add(Packet{Seq: uint16(i), TS: uint32(i) * 960, Arrival: t0.Add(time.Duration(i)*20*time.Millisecond + late)})
	}
	if j := s.Summary().Jitter; math.Abs(float64(j-10*time.Millisecond)) > float64(50*time.Microsecond) {
		t.Errorf("alternating 10 ms: jitter %v, want 10ms", j)
	}
	// One jump of D from a jitter of 0 gives D/16.
	s = NewStream(90000)
	s.Add(Packet{Seq: 1, TS: 0, Arrival: t0})
	s.Add(Packet{Seq: 2, TS: 9000, Arrival: t0.Add(100*time.Millisecond + 16*time.Millisecond)})
	if j := s.Summary().Jitter; math.Abs(float64(j-time.Millisecond)) > float64(time.Microsecond) {
		t.Errorf("one 16 ms jump: jitter %v, want 1ms", j)
	}
	// The timestamp wrapping is not a jump.
	s = NewStream(90000)
	s.Add(Packet{Seq: 1, TS: math.MaxUint32 - 1499, Arrival: t0})
	s.Add(Packet{Seq: 2, TS: 1500, Arrival: t0.Add(time.Second / 30)})
	if j := s.Summary().Jitter; j > time.Microsecond {
		t.Errorf("timestamp wrap: jitter %v, want 0", j)
	}
}

func TestLatencyAndFirsts(t *testing.T) {
	s := NewStream(90000)
	for i := range 100 {
		arrival := t0.Add(time.Duration(i) * 10 * time.Millisecond)
		lat := time.Duration(i+1) * time.Millisecond // 1..100 ms
		s.Add(Packet{Seq: uint16(i), TS: uint32(i) * 900, Arrival: arrival, Capture: arrival.Add(-lat), Keyframe: i == 3 || i == 50})
	}
	s.Add(Packet{Seq: 100, TS: 90000, Arrival: t0.Add(time.Second)}) // no capture time
	s.Add(Packet{Seq: 101, TS: 90000, Arrival: t0.Add(time.Second), Capture: t0.Add(2 * time.Second)})
	sum := s.Summary()
	if !sum.First.Equal(t0) || !sum.FirstKey.Equal(t0.Add(30*time.Millisecond)) {
		t.Errorf("first %v, first keyframe %v", sum.First.Sub(t0), sum.FirstKey.Sub(t0))
	}
	if sum.NoCapture != 1 || sum.Negative != 1 || s.Latency.Count() != 100 {
		t.Errorf("no capture %d, negative %d, latency samples %d", sum.NoCapture, sum.Negative, s.Latency.Count())
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.95, 95 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}} {
		got := s.Latency.Quantile(c.q)
		if math.Abs(float64(got-c.want)) > 0.02*float64(c.want) {
			t.Errorf("p%v latency %v, want %v within 2%%", c.q*100, got, c.want)
		}
	}
	if m := s.Latency.Mean(); m < 50*time.Millisecond || m > 51*time.Millisecond {
		t.Errorf("mean latency %v, want 50.5ms", m)
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 {
		t.Error("empty histogram is not zero")
	}
	// Every bucket's lower bound falls in that bucket, and buckets grow.
	for i := 0; i < histBuckets; i++ {
		if b := bucket(lower(i)); b != i {
			t.Fatalf("lower(%d) = %d falls in bucket %d", i, lower(i), b)
		}
		if i > 0 && lower(i) <= lower(i-1) {
			t.Fatalf("lower(%d) = %d not above lower(%d) = %d", i, lower(i), i-1, lower(i-1))
		}
	}
	h.Record(-time.Second)
	h.Record(time.Hour) // past the top: last bucket, still the max
	if h.Count() != 2 || h.Max() != time.Hour || h.Quantile(0) != 0 {
		t.Errorf("count %d max %v p0 %v", h.Count(), h.Max(), h.Quantile(0))
	}
	var o Histogram
	o.Record(3 * time.Millisecond)
	h.Merge(&o)
	if h.Count() != 3 || h.Quantile(0.5) < 2900*time.Microsecond || h.Quantile(0.5) > 3100*time.Microsecond {
		t.Errorf("merged: count %d p50 %v", h.Count(), h.Quantile(0.5))
	}
	n := 0
	h.Buckets(func(time.Duration, uint64) { n++ })
	if n != 3 {
		t.Errorf("%d non-empty buckets, want 3", n)
	}
}

// FuzzStream: any packet sequence keeps the figures consistent and never
// panics.
func FuzzStream(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 255, 255, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := NewStream(90000)
		for i := 0; i+1 < len(b); i += 2 {
			s.Add(Packet{Seq: uint16(b[i])<<8 | uint16(b[i+1]), TS: uint32(i) * 100, Arrival: t0.Add(time.Duration(i) * time.Millisecond)})
		}
		sum := s.Summary()
		if sum.Received > sum.Expected+sum.Late || sum.Lost < 0 || sum.Lost > sum.Expected {
			t.Fatalf("inconsistent: %+v", sum)
		}
	})
}
