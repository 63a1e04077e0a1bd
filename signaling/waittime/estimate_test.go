package waittime

import (
	"math"
	"testing"
	"time"
)

// near reports whether got is within tol of want.
func near(got, want, tol time.Duration) bool {
	d := got - want
	return -tol <= d && d <= tol
}

// seconds converts s seconds to a Duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func TestEstimateUnknown(t *testing.T) {
	for _, in := range []Input{
		{Position: 1},
		{Position: 3, Agents: 0, Capacity: 4, Busy: 0, DefaultHandle: time.Minute},
		{Position: 3, Agents: -2, Stats: Stats{Answered: 0, AvgWait: time.Minute}},
		{Position: 3, Stats: Stats{AnswerRate: math.NaN()}},
		{Position: 3, Stats: Stats{AnswerRate: -1}},
		{Position: 3, Stats: Stats{AnswerRate: math.Inf(1)}},
	} {
		if d, known := Estimate(in); known || d != 0 {
			t.Errorf("Estimate(%+v) = %v, %v; want 0, unknown", in, d, known)
		}
	}
}

func TestEstimateNotWaiting(t *testing.T) {
	for _, pos := range []int{0, -1, math.MinInt} {
		if d, known := Estimate(Input{Position: pos}); !known || d != 0 {
			t.Errorf("Position %d: %v, %v; want 0, known", pos, d, known)
		}
	}
}

func TestEstimateFreeSlots(t *testing.T) {
	in := Input{Agents: 3, Busy: 1, DefaultHandle: 6 * time.Minute}
	for pos, want := range map[int]time.Duration{
		1: 0,
		2: 0,               // two free slots
		3: 2 * time.Minute, // one release of three slots, 6m/3
		4: 4 * time.Minute,
	} {
		in.Position = pos
		if d, known := Estimate(in); !known || d != want {
			t.Errorf("Position %d: %v, %v; want %v", pos, d, known, want)
		}
	}
}

func TestEstimateCapacityModel(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		want time.Duration
	}{
		{
			// k customers, c busy agents, handle H: k*H/c.
			name: "default handle",
			in:   Input{Position: 8, Agents: 4, Busy: 4, DefaultHandle: 5 * time.Minute},
			want: 10 * time.Minute,
		},
		{
			name: "fallback handle",
			in:   Input{Position: 2, Agents: 1, Busy: 1, DefaultHandle: -time.Second},
			want: 2 * FallbackHandle,
		},
		{
			// Window mean handle 3m over 1000 calls; the 5m default counts
			// as 2 more: (1000*3 + 2*5)/1002 minutes.
			name: "window handle",
			in: Input{Position: 6, Agents: 2, Busy: 2, DefaultHandle: 5 * time.Minute,
				Stats: Stats{Handled: 1000, AvgHandle: 3 * time.Minute}},
			want: seconds(6.0 / 2 * (1000*180.0 + 2*300) / 1002),
		},
		{
			// A single long call barely moves the estimate off the default.
			name: "one sample",
			in: Input{Position: 1, Agents: 1, Busy: 1, DefaultHandle: 4 * time.Minute,
				Stats: Stats{Handled: 1, AvgHandle: 40 * time.Minute}},
			want: 16 * time.Minute, // (40 + 2*4)/3
		},
		{
			name: "capacity",
			in:   Input{Position: 4, Agents: 2, Capacity: 4, Busy: 4, DefaultHandle: 4 * time.Minute},
			want: 4 * time.Minute,
		},
		{
			name: "capacity below agents is raised",
			in:   Input{Position: 4, Agents: 4, Capacity: 1, Busy: 4, DefaultHandle: 4 * time.Minute},
			want: 4 * time.Minute,
		},
		{
			name: "busy above capacity",
			in:   Input{Position: 3, Agents: 3, Busy: 99, DefaultHandle: 3 * time.Minute},
			want: 3 * time.Minute,
		},
		{
			name: "negative busy",
			in:   Input{Position: 3, Agents: 2, Busy: -5, DefaultHandle: 3 * time.Minute},
			want: 90 * time.Second,
		},
		{
			// Too few answers for the observed rate to count.
			name: "few answers ignored",
			in: Input{Position: 2, Agents: 1, Busy: 1, DefaultHandle: 5 * time.Minute,
				Stats: Stats{Answered: minObserved - 1, AnswerRate: 1}},
			want: 10 * time.Minute,
		},
		{
			// Time already waited does not change the remaining wait.
			name: "waited",
			in:   Input{Position: 8, Waited: time.Hour, Agents: 4, Busy: 4, DefaultHandle: 5 * time.Minute},
			want: 10 * time.Minute,
		},
	}
	for _, tt := range tests {
		d, known := Estimate(tt.in)
		if !known || !near(d, tt.want, time.Microsecond) {
			t.Errorf("%s: Estimate = %v, %v; want %v", tt.name, d, known, tt.want)
		}
	}
}

func TestEstimateObservedRate(t *testing.T) {
	// Two agents with a 10 minute default handle: the model frees a slot
	// every 5 minutes. The window has seen one answer a minute.
	base := Input{Position: 3, Agents: 2, Busy: 2, DefaultHandle: 10 * time.Minute}
	capacityOnly := 15 * time.Minute // 3 * 5m
	observedOnly := 3 * time.Minute  // 3 * 1m

	t.Run("faster and plentiful dominates", func(t *testing.T) {
		in := base
		in.Stats = Stats{Answered: 200, AnswerRate: 1.0 / 60}
		d, known := Estimate(in)
		// w = min(0.8, 200/210) = 0.8: gap = 0.2*5m + 0.8*1m = 1.8m.
		if want := 3 * 108 * time.Second; !known || !near(d, want, time.Microsecond) {
			t.Errorf("Estimate = %v, %v; want %v", d, known, want)
		}
		if d-observedOnly >= capacityOnly-d {
			t.Errorf("Estimate = %v is not closer to the observed %v than to the model's %v", d, observedOnly, capacityOnly)
		}
	})

	t.Run("weight grows with samples", func(t *testing.T) {
		prev := capacityOnly + 1
		for _, n := range []int{0, minObserved, 10, 20, 40, 1000} {
			in := base
			in.Stats = Stats{Answered: n, AnswerRate: 1.0 / 60}
			d, _ := Estimate(in)
			if d > prev {
				t.Errorf("%d answers: %v, more than %v with fewer answers", n, d, prev)
			}
			if d < observedOnly || d > capacityOnly {
				t.Errorf("%d answers: %v outside [%v, %v]", n, d, observedOnly, capacityOnly)
			}
			prev = d
		}
	})

	t.Run("slower only nudges", func(t *testing.T) {
		// One answer every 20 minutes while the model says every 5: agents
		// may have been idle for lack of customers, so at most a quarter.
		in := base
		in.Stats = Stats{Answered: 1000, AnswerRate: 1.0 / 1200}
		d, known := Estimate(in)
		want := 3 * (15*time.Minute/4 + 20*time.Minute/4) // 3 * (0.75*5m + 0.25*20m)
		if !known || !near(d, want, time.Microsecond) {
			t.Errorf("Estimate = %v, %v; want %v", d, known, want)
		}
	})

	t.Run("no agents but answers seen", func(t *testing.T) {
		in := Input{Position: 4, Stats: Stats{Answered: 1, AnswerRate: 1.0 / 30}}
		d, known := Estimate(in)
		if !known || !near(d, 2*time.Minute, time.Microsecond) {
			t.Errorf("Estimate = %v, %v; want 2m, known", d, known)
		}
	})
}

func TestEstimateCap(t *testing.T) {
	for _, in := range []Input{
		{Position: math.MaxInt, Agents: 1, Busy: 1, DefaultHandle: time.Hour},
		{Position: 2, Agents: 1, Busy: 1, DefaultHandle: math.MaxInt64},
		{Position: 2, Agents: 1, Busy: 1, Stats: Stats{Handled: math.MaxInt, AvgHandle: math.MaxInt64}},
		{Position: 2, Stats: Stats{Answered: 1, AnswerRate: math.SmallestNonzeroFloat64}},
	} {
		if d, known := Estimate(in); !known || d != MaxEstimate {
			t.Errorf("Estimate(%+v) = %v, %v; want %v, known", in, d, known, MaxEstimate)
		}
	}
}

// TestEstimateSane sweeps odd and ordinary inputs: no panic, the result is
// within [0, MaxEstimate], known unless nobody can answer, and it never
// decreases as the customer is further back in the queue.
func TestEstimateSane(t *testing.T) {
	ints := []int{math.MinInt, -1, 0, 1, 2, 5, 1000, math.MaxInt}
	durs := []time.Duration{math.MinInt64, -time.Minute, 0, time.Nanosecond, 4 * time.Minute, math.MaxInt64}
	rates := []float64{math.Inf(-1), -1, 0, math.NaN(), 1e-300, 0.01, 1, math.Inf(1)}
	for _, agents := range ints {
		for _, capacity := range ints {
			for _, busy := range ints {
				for _, handle := range durs {
					for _, rate := range rates {
						for _, n := range ints {
							prev := time.Duration(-1)
							for _, pos := range ints {
								in := Input{Position: pos, Agents: agents, Capacity: capacity, Busy: busy,
									Stats:         Stats{Answered: n, Handled: n, AvgHandle: handle, AnswerRate: rate},
									DefaultHandle: handle}
								d, known := Estimate(in)
								if d < 0 || d > MaxEstimate {
									t.Fatalf("Estimate(%+v) = %v out of range", in, d)
								}
								if !known && (pos <= 0 || agents > 0 || rate > 0 && !math.IsInf(rate, 1)) {
									t.Fatalf("Estimate(%+v) unknown", in)
								}
								if known && d < prev {
									t.Fatalf("Estimate(%+v) = %v, less than %v one place ahead", in, d, prev)
								}
								if known {
									prev = d
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestRound(t *testing.T) {
	s, m := time.Second, time.Minute
	tests := []struct{ in, want time.Duration }{
		{math.MinInt64, 0},
		{-5 * s, 0},
		{0, 0},
		{1, 15 * s}, // never "0 seconds" while waiting
		{7 * s, 15 * s},
		{7*s + 500*time.Millisecond, 15 * s},
		{8 * s, 15 * s},
		{22 * s, 15 * s},
		{22*s + 500*time.Millisecond, 30 * s},
		{44 * s, 45 * s},
		{52 * s, 45 * s},
		{52*s + 500*time.Millisecond, m},
		{59 * s, m},
		{m, m},
		{m + 29*s, m},
		{m + 30*s, 2 * m},
		{3*m + 10*s, 3 * m},
		{9*m + 29*s, 9 * m},
		{9*m + 30*s, 10 * m},
		{10 * m, 10 * m},
		{12*m + 29*s, 10 * m},
		{12*m + 30*s, 15 * m},
		{62 * m, time.Hour},
		{MaxEstimate, MaxEstimate},
		{math.MaxInt64, math.MaxInt64 - math.MaxInt64%(5*m)},
	}
	for _, tt := range tests {
		if got := Round(tt.in); got != tt.want {
			t.Errorf("Round(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestRoundMonotone checks that a growing estimate never displays as a
// smaller one, across all the step boundaries.
func TestRoundMonotone(t *testing.T) {
	prev := Round(0)
	for d := time.Duration(0); d <= 30*time.Minute; d += 250 * time.Millisecond {
		got := Round(d)
		if got < prev {
			t.Fatalf("Round(%v) = %v, less than %v just below", d, got, prev)
		}
		if d > 0 && got <= 0 {
			t.Fatalf("Round(%v) = %v for a positive estimate", d, got)
		}
		prev = got
	}
}
