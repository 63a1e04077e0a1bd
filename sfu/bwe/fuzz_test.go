package bwe

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// FuzzFeedback checks that ParseFeedback and Estimator.Feedback never panic
// and that ParseFeedback agrees with pion/rtcp wherever both accept a packet.
// Where only one accepts, the reason must be one of the differences
// documented on ParseFeedback.
func FuzzFeedback(f *testing.F) {
	for _, c := range feedbackCases() {
		f.Add(buildTWCC(f, c.base, c.ref, 1, c.st, c.style))
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		f.Add(buildTWCC(f, uint16(r.Uint32()), r.Uint32(), 0, randomStatuses(r, r.IntN(60)), chunkStyle(r.IntN(5))))
	}
	e := New(Config{})
	now := time.Unix(0, 0)
	for i := range 200 {
		// Every other run of 10 packets is a probe cluster, paced 2 ms apart.
		if id := i / 10; id%2 == 1 {
			e.SentProbe(1000, now.Add(time.Duration(i)*2*time.Millisecond), id)
		} else {
			e.Sent(1200, now)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseAll(b)
		_ = e.Feedback(b, now)

		var want rtcp.TransportLayerCC
		perr := want.Unmarshal(b)
		switch {
		case err == nil && perr == nil:
			comparePion(t, got, &want)
		case err == nil && perr != nil:
			// pion asks for a byte after the last chunk.
			if slices.Contains(got.recv, true) {
				t.Fatalf("pion rejects (%v) a packet we accept with received packets: %x", perr, b)
			}
		case err != nil && perr == nil:
			padded := b[0]&0x20 != 0
			switch {
			case errors.Is(err, ErrLength) && len(b) > 4*(int(want.Header.Length)+1):
			case errors.Is(err, ErrReserved):
			case errors.Is(err, ErrPadding) && padded:
			case errors.Is(err, ErrTruncated) && padded:
			default:
				t.Fatalf("we reject (%v) a packet pion accepts: %x", err, b)
			}
		}
	})
}
