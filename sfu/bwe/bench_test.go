package bwe

import (
	"testing"
	"time"
)

func BenchmarkSent(b *testing.B) {
	e := New(Config{})
	now := epoch
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.Sent(1200, now.Add(time.Duration(i)*time.Microsecond))
	}
}

func BenchmarkSentParallel(b *testing.B) {
	e := New(Config{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e.Sent(1200, epoch)
		}
	})
}

// BenchmarkSentProbe sends probe clusters of 15 packets.
func BenchmarkSentProbe(b *testing.B) {
	e := New(Config{})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.SentProbe(1000, epoch.Add(time.Duration(i)*time.Microsecond), i/15+1)
	}
}

// BenchmarkFeedback feeds 50-packet feedback packets (10 Mbit/s of 1200-byte
// packets, one feedback per 50 ms, 2% loss) in steady state. The same 64
// packets are replayed with send history and reference time shifted forward
// each round, so every packet is new to the estimator.
func BenchmarkFeedback(b *testing.B) { benchFeedback(b, false) }

// BenchmarkFeedbackProbes is BenchmarkFeedback with every eighth feedback
// packet starting with a 15-packet probe cluster, measured when reported.
func BenchmarkFeedbackProbes(b *testing.B) { benchFeedback(b, true) }

func benchFeedback(b *testing.B, probes bool) {
	const (
		perFb = 50
		nFb   = 64
		gap   = time.Millisecond // between packets
		round = nFb * perFb * gap
	)
	e := New(Config{Initial: 10e6})
	for k := range nFb * perFb {
		if i := k / perFb; probes && i%8 == 0 && k%perFb < 15 {
			e.SentProbe(1200, epoch.Add(time.Duration(k)*gap), i/8+1)
		} else {
			e.Sent(1200, epoch) // send times are set below
		}
	}
	clusters := e.probes // replayed every round
	fbs := make([][]byte, nFb)
	for i := range fbs {
		st := make([]status, perFb)
		first := time.Duration(i*perFb)*gap + 20*time.Millisecond
		ref := first / (64 * time.Millisecond)
		prev := int64(ref * 256)
		for j := range st {
			if (i*perFb+j)%50 == 7 {
				continue // lost
			}
			arr := time.Duration(i*perFb+j)*gap + 20*time.Millisecond + time.Duration(j%3)*300*time.Microsecond
			ticks := int64(arr / (250 * time.Microsecond))
			st[j] = status{true, ticks - prev}
			prev = ticks
		}
		fbs[i] = buildTWCC(b, uint16(i*perFb), uint32(ref), uint8(i), st, styleAuto)
	}
	refs := make([]uint32, nFb)
	for i, fb := range fbs {
		refs[i] = uint32(fb[16])<<16 | uint32(fb[17])<<8 | uint32(fb[18])
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(fbs[0])))
	for n := 0; b.Loop(); n++ {
		i, pass := n%nFb, n/nFb
		if i == 0 {
			shift := time.Duration(pass) * round
			for k := range nFb * perFb {
				p := &e.ring[k]
				p.send, p.state = int64(shift+time.Duration(k)*gap), stateUnreported
			}
			if probes {
				e.probes.c = clusters.c
				for j := range e.probes.c {
					c := &e.probes.c[j]
					c.firstSend += int64(shift)
					c.lastSend += int64(shift)
				}
			}
			for j, fb := range fbs {
				r := refs[j] + uint32(pass)*uint32(round/(64*time.Millisecond))
				fb[16], fb[17], fb[18] = byte(r>>16), byte(r>>8), byte(r)
			}
		}
		now := epoch.Add(time.Duration(pass)*round + time.Duration(i+1)*perFb*gap + 40*time.Millisecond)
		if err := e.Feedback(fbs[i], now); err != nil {
			b.Fatal(err)
		}
	}
	if e.Estimate() < 5e6 {
		b.Fatalf("estimate fell to %d on an uncongested replay", e.Estimate())
	}
	if r := e.ProbeResult(); probes && r.Rate == 0 {
		b.Fatalf("no probe cluster measured: %+v", r)
	}
}

func BenchmarkParseFeedback(b *testing.B) {
	st := make([]status, 100)
	for i := range st {
		st[i] = status{i%40 != 3, int64(i % 9)}
	}
	fb := buildTWCC(b, 65500, 1, 0, st, styleAuto)
	var recv int
	fn := func(_ uint16, received bool, _ time.Duration) {
		if received {
			recv++
		}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(fb)))
	for b.Loop() {
		if _, err := ParseFeedback(fb, fn); err != nil {
			b.Fatal(err)
		}
	}
}
