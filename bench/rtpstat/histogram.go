package rtpstat

import (
	"math/bits"
	"time"
)

// Histogram counts durations in microseconds in log-linear buckets: exact
// below 64 µs, then 64 buckets per power of two (within 1.6%), up to
// 2^24 µs (16.8 s); longer durations count in the last bucket. The zero
// value is empty and ready; it is 5 KiB, fixed.
type Histogram struct {
	counts [histBuckets]uint32
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const (
	histSub     = 64 // buckets per power of two
	histMaxBits = 24 // durations up to 2^24 µs
	histBuckets = histSub + (histMaxBits-6)*histSub
)

func bucket(us uint64) int {
	if us < histSub {
		return int(us)
	}
	shift := bits.Len64(us) - 7 // the top 7 bits select the bucket
	i := histSub + shift*histSub + int(us>>shift) - histSub
	return min(i, histBuckets-1)
}

// lower is the smallest duration in µs that falls in bucket i.
func lower(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := (i - histSub) / histSub
	return uint64(histSub+(i-histSub)%histSub) << shift
}

// Record adds one duration (negative counts as 0).
func (h *Histogram) Record(d time.Duration) {
	d = max(d, 0)
	h.counts[bucket(uint64(d/time.Microsecond))]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Count is the number of durations recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Mean is the average duration (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Max is the longest duration recorded.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile returns the duration below which a fraction q (0 to 1) of the
// recorded durations fall: the middle of the bucket holding it, never
// above Max (0 when empty).
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n-1)) + 1
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			lo, hi := lower(i), lower(i+1)
			mid := time.Duration((lo+hi)/2) * time.Microsecond
			return min(mid, h.max)
		}
	}
	return h.max
}

// Buckets calls f for each non-empty bucket, in order, with its lower
// bound and count (for charts).
func (h *Histogram) Buckets(f func(lower time.Duration, count uint64)) {
	for i, c := range h.counts {
		if c > 0 {
			f(time.Duration(lower(i))*time.Microsecond, uint64(c))
		}
	}
}
