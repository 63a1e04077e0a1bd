package sfu

import (
	"bytes"
	"testing"
	"time"
)

// feedCache puts packets seq0, seq0+step, ... (n of them) at rate per second
// into c, starting at t0, and returns the time after the last.
func feedCache(c *packetCache, seq0 uint16, step, n int, rate float64, t0 int64) int64 {
	at := t0
	for i := range n {
		seq := seq0 + uint16(i*step)
		c.put(seq, uint32(seq)*90, i%3 == 0, payloadOf(seq), at)
		at += int64(float64(time.Second) / rate)
	}
	return at
}

func payloadOf(seq uint16) []byte { return []byte{byte(seq >> 8), byte(seq), 0xab, byte(seq % 7)} }

func TestPacketCacheSizedByRate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rate  float64
		step  int // sequence numbers per stored packet (padding in between is not stored)
		slots int
	}{
		{"audio 50/s", 50, 1, 64},
		{"video 160/s", 160, 1, 256},
		{"video 800/s", 800, 1, 1024},
		{"video 160/s with padding between", 160, 3, 256},
		{"too fast", 10_000, 1, cacheMaxSlots},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newPacketCache()
			seq0 := uint16(65000) // wraps
			n := int(3 * tc.rate)
			feedCache(c, seq0, tc.step, n, tc.rate, 1e9)
			if got := c.size(); got != tc.slots {
				t.Errorf("%d slots after 3 s, want %d", got, tc.slots)
			}
			// The last second is all there.
			buf := make([]byte, 1500)
			held := min(n, int(tc.rate))
			if tc.slots == cacheMaxSlots {
				held = cacheMaxSlots / tc.step
			}
			for i := n - held; i < n; i++ {
				seq := seq0 + uint16(i*tc.step)
				k, ts, marker, ok := c.get(seq, buf)
				if !ok {
					t.Fatalf("packet %d (%d of %d) missing", seq, i, n)
				}
				if !bytes.Equal(buf[:k], payloadOf(seq)) || ts != uint32(seq)*90 || marker != (i%3 == 0) {
					t.Fatalf("packet %d came back wrong: %x ts %d marker %v", seq, buf[:k], ts, marker)
				}
			}
		})
	}
}

func TestPacketCacheShrinks(t *testing.T) {
	c := newPacketCache()
	end := feedCache(c, 100, 1, 2000, 1000, 1e9)
	if got := c.size(); got != 1024 {
		t.Fatalf("%d slots at 1000 packets/s, want 1024", got)
	}
	feedCache(c, 2100, 1, 600, 20, end)
	if got := c.size(); got >= 1024 {
		t.Errorf("still %d slots after 30 s at 20 packets/s", got)
	}
	buf := make([]byte, 1500)
	for seq := uint16(2100 + 600 - 20); seq != 2100+600; seq++ {
		if _, _, _, ok := c.get(seq, buf); !ok {
			t.Fatalf("packet %d lost by shrinking", seq)
		}
	}
}

func TestPacketCacheMisses(t *testing.T) {
	c := newPacketCache()
	feedCache(c, 10, 1, 40, 50, 1e9)
	buf := make([]byte, 1500)
	if _, _, _, ok := c.get(9, buf); ok {
		t.Error("a packet never stored was found")
	}
	if _, _, _, ok := c.get(60, buf); ok {
		t.Error("a future packet was found")
	}
	if _, _, _, ok := c.get(30, buf[:2]); ok {
		t.Error("a packet larger than the buffer was returned")
	}
	// A late packet fills its hole; a duplicate changes nothing.
	c2 := newPacketCache()
	c2.put(5, 1, false, []byte{1}, 1e9)
	c2.put(7, 3, false, []byte{3}, 1e9)
	c2.put(6, 2, false, []byte{2}, 1e9)
	c2.put(7, 9, true, []byte{9}, 1e9)
	for seq, want := range map[uint16]byte{5: 1, 6: 2, 7: 3} {
		n, _, _, ok := c2.get(seq, buf)
		if !ok || n != 1 || buf[0] != want {
			t.Errorf("packet %d: ok %v payload %x, want %x", seq, ok, buf[:n], want)
		}
	}
	// A packet too old for the cache is not stored over newer ones.
	old := uint16(7 + 65536 - cacheMinSlots)
	c2.put(old, 0, false, []byte{0xee}, 1e9)
	if _, _, _, ok := c2.get(old, buf); ok {
		t.Error("a packet older than the cache was stored")
	}
}

func BenchmarkPacketCachePut(b *testing.B) {
	c := newPacketCache()
	p := make([]byte, 1200)
	at := int64(1e9)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.put(uint16(i), uint32(i), false, p, at)
		at += int64(time.Second / 200)
	}
}
