package rtpclock

import (
	"testing"
	"time"
)

func TestUnwrap(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []uint32
		want []int64
	}{
		{"forward", []uint32{10, 20, 30}, []int64{10, 20, 30}},
		{"wrap", []uint32{0xfffffff0, 0xffffffff, 0, 0x10}, []int64{0xfffffff0, 0xffffffff, 1 << 32, 1<<32 + 0x10}},
		{"reordered across the wrap", []uint32{0xfffffff0, 0x10, 0xfffffff8, 0x20}, []int64{0xfffffff0, 1<<32 + 0x10, 0xfffffff8, 1<<32 + 0x20}},
		{"older before the first", []uint32{5, 0xfffffffb}, []int64{5, -5}},
		{"wraps twice", []uint32{0, 0x7ffffff0, 0xffffffe0, 0x7fffffd0, 0xffffffc0, 0x10},
			[]int64{0, 0x7ffffff0, 0xffffffe0, 1<<32 + 0x7fffffd0, 1<<32 + 0xffffffc0, 2<<32 + 0x10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var u Unwrapper
			for i, ts := range tc.in {
				if got := u.Unwrap(ts); got != tc.want[i] {
					t.Errorf("Unwrap(%#x) #%d = %#x, want %#x", ts, i, got, tc.want[i])
				}
			}
		})
	}
}

func TestNTPTime(t *testing.T) {
	want := time.Date(2026, 12, 7, 12, 0, 0, 250_000_000, time.UTC)
	ntp := uint64(want.Unix()+2208988800)<<32 | 1<<30 // .25 s
	if got := NTPTime(ntp); !got.Equal(want) {
		t.Errorf("NTPTime = %v, want %v", got, want)
	}
}

var base = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestTrackArrivalThenSenderReport(t *testing.T) {
	c := NewTrack(90000)
	// Before any report: the first packet's arrival anchors RTP time.
	if got := c.Wall(1000, base); !got.Equal(base) {
		t.Fatalf("first frame at %v, want its arrival %v", got, base)
	}
	if got := c.Wall(1000+9000, base.Add(time.Hour)); !got.Equal(base.Add(ms(100))) {
		t.Fatalf("frame 100 ms later at %v, want %v (arrival ignored once anchored)", got, base.Add(ms(100)))
	}
	if c.FromSR() {
		t.Fatal("FromSR before a report")
	}
	// A report that agrees with the arrival mapping changes nothing.
	c.SenderReport(1000+18000, base.Add(ms(200)))
	if got := c.Wall(1000+18000, time.Time{}); !got.Equal(base.Add(ms(200))) {
		t.Errorf("at the report's RTP time: %v, want %v", got, base.Add(ms(200)))
	}
	if !c.FromSR() {
		t.Error("FromSR false after a report")
	}
}

func TestTrackSenderReportDisagreesNoJumpBack(t *testing.T) {
	c := NewTrack(90000)
	c.Wall(0, base)
	last := c.Wall(90000, time.Time{}) // 1 s
	// A report says RTP time 1 s was 40 ms earlier on the wall clock.
	c.SenderReport(90000, base.Add(ms(960)))
	prev := last
	for i := 1; i <= 100; i++ {
		got := c.Wall(uint32(90000+i*3000), time.Time{}) // 33.3 ms frames
		if !got.After(prev) {
			t.Fatalf("frame %d at %v, not after %v: time went back", i, got, prev)
		}
		prev = got
	}
	// 40 ms at 5% is worked off after 800 ms of media; 100 frames is 3.3 s.
	want := base.Add(ms(960) + time.Duration(100*3000)*time.Second/90000)
	if prev.Sub(want).Abs() > time.Millisecond {
		t.Errorf("after the slew: %v, want %v (the report's mapping)", prev, want)
	}
	// A frame 33 ms after the report is still close to the old mapping.
	c2 := NewTrack(90000)
	c2.Wall(0, base)
	c2.Wall(90000, time.Time{})
	c2.SenderReport(90000, base.Add(ms(960)))
	got := c2.Wall(90000+3000, time.Time{})
	if d := got.Sub(base.Add(ms(1033))); d < -ms(3) || d > 0 {
		t.Errorf("first frame after the report at %v, want about %v (slewed by at most 5%%)", got, base.Add(ms(1033)))
	}
}

func TestTrackSenderReportAheadSlewsForward(t *testing.T) {
	c := NewTrack(48000)
	c.Wall(0, base)
	c.Wall(48000, time.Time{})
	c.SenderReport(48000, base.Add(ms(1030))) // 30 ms later than arrival said
	got := c.Wall(48000+960, time.Time{})     // 20 ms of audio later
	if d := got.Sub(base.Add(ms(1020))); d < 0 || d > ms(2) {
		t.Errorf("next frame at %v, want just after %v", got, base.Add(ms(1020)))
	}
	end := c.Wall(48000+48000, time.Time{})
	if !end.Equal(base.Add(ms(2030))) {
		t.Errorf("1 s later at %v, want %v", end, base.Add(ms(2030)))
	}
}

func TestTrackBigJumpForward(t *testing.T) {
	c := NewTrack(90000)
	c.Wall(0, base)
	c.SenderReport(0, base.Add(5*time.Second))
	want := base.Add(5*time.Second + time.Duration(3000)*time.Second/90000)
	if got := c.Wall(3000, time.Time{}); !got.Equal(want) {
		t.Errorf("after a report 5 s ahead: %v, want the report's mapping", got)
	}
}

func TestTrackTimestampWrap(t *testing.T) {
	c := NewTrack(90000)
	start := uint32(0xffffffff - 4500 + 1) // wraps 50 ms in
	c.Wall(start, base)
	got := c.Wall(start+9000, time.Time{})
	if !got.Equal(base.Add(ms(100))) {
		t.Errorf("across the wrap: %v, want %v", got, base.Add(ms(100)))
	}
	c.SenderReport(start+18000, base.Add(ms(200)))
	if got := c.Wall(start+18000, time.Time{}); !got.Equal(base.Add(ms(200))) {
		t.Errorf("report after the wrap: %v, want %v", got, base.Add(ms(200)))
	}
}

func TestTrackReportBeforeFirstPacket(t *testing.T) {
	c := NewTrack(90000)
	c.SenderReport(9000, base.Add(ms(500)))
	if got := c.Wall(0, base.Add(time.Hour)); !got.Equal(base.Add(ms(400))) {
		t.Errorf("first frame at %v, want %v from the earlier report", got, base.Add(ms(400)))
	}
}

func TestTrackResetStaysMonotonic(t *testing.T) {
	c := NewTrack(90000)
	c.Wall(0, base)
	last := c.Wall(90000, time.Time{}) // base+1s
	c.Reset()
	// The new SSRC's first packet arrived (by a skewed clock) before the
	// last frame's time: it is not placed earlier.
	if got := c.Wall(777, base.Add(ms(990))); got.Before(last) {
		t.Errorf("after Reset: %v, before the last time %v", got, last)
	}
	if got := c.Wall(777+9000, time.Time{}); !got.After(last) {
		t.Errorf("100 ms on: %v, not after %v", got, last)
	}
}

func TestPublisherLocal(t *testing.T) {
	var p Publisher
	off := 37 * time.Second
	ntp := func(t time.Time) uint64 {
		return uint64(t.Unix()+2208988800)<<32 | uint64(t.Nanosecond())<<32/1e9
	}
	got := p.Local(ntp(base.Add(off)), base.Add(ms(15)))
	if !got.Equal(base.Add(ms(15))) {
		t.Errorf("first report: %v, want its arrival %v", got, base.Add(ms(15)))
	}
	// Later reports keep the offset: their own network delay is ignored.
	got = p.Local(ntp(base.Add(off+time.Second)), base.Add(time.Second+ms(80)))
	if want := base.Add(time.Second + ms(15)); got.Sub(want).Abs() > time.Microsecond {
		t.Errorf("second report: %v, want %v", got, want)
	}
}
