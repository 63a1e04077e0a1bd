package sfu

import (
	"runtime"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// Fan-out over cores. The goroutine that received a layer's packet (the
// media socket's reader, see layer.receive) writes it to every sink itself
// while there are few; writing to a down track costs several
// microseconds (SRTP and a system call), so past spreadAbove sinks one core
// may not keep up with a large room. The layer then hands slices of its sink
// list to helper goroutines, one per other core, writes the first slice
// itself and waits for the rest before it takes the next packet (so the
// packet's buffer is still valid while they work, and every sink still gets
// the layer's packets in order).

// spreadAbove is the number of sinks above which a layer spreads its
// fan-out; below it one goroutine wakes no other.
const spreadAbove = 64

// fanJob is one slice of a packet's sinks for a helper.
type fanJob struct {
	sinks   []sink
	layer   int
	h       *rtp.Header
	payload []byte
	key     bool
	now     time.Time
	readAt  time.Time
	done    *sync.WaitGroup
}

// fanOut is a layer's pool of helper goroutines.
type fanOut struct {
	jobs    chan fanJob
	helpers int
	wg      sync.WaitGroup
	done    sync.WaitGroup // the current packet's jobs; used by the layer's goroutine only
	metrics *metrics
}

// newFanOut starts one helper per core beyond the first, or returns nil on
// a single core.
func newFanOut(m *metrics) *fanOut {
	n := runtime.GOMAXPROCS(0) - 1
	if n < 1 {
		return nil
	}
	f := &fanOut{jobs: make(chan fanJob, n), helpers: n, metrics: m}
	f.wg.Add(n)
	for range n {
		go func() {
			defer f.wg.Done()
			for j := range f.jobs {
				writeSinks(j.sinks, j.layer, j.h, j.payload, j.key, j.now, j.readAt, f.metrics)
				j.done.Done()
			}
		}()
	}
	return f
}

// stop ends the helpers and waits for them.
func (f *fanOut) stop() {
	close(f.jobs)
	f.wg.Wait()
}

// deliver writes one packet to all sinks, spread over the helpers.
func (f *fanOut) deliver(sinks []sink, layer int, h *rtp.Header, payload []byte, key bool, now, readAt time.Time) {
	parts := min(f.helpers+1, len(sinks)/(spreadAbove/2))
	per := (len(sinks) + parts - 1) / parts
	for i := per; i < len(sinks); i += per {
		f.done.Add(1)
		f.jobs <- fanJob{sinks: sinks[i:min(i+per, len(sinks))], layer: layer, h: h, payload: payload, key: key, now: now, readAt: readAt, done: &f.done}
	}
	writeSinks(sinks[:per], layer, h, payload, key, now, readAt, f.metrics)
	f.done.Wait()
}

// writeSinks writes one packet to each of sinks in turn; with a non-zero
// readAt it measures each write's forwarding latency.
func writeSinks(sinks []sink, layer int, h *rtp.Header, payload []byte, key bool, now, readAt time.Time, m *metrics) {
	for _, s := range sinks {
		s.writeRTP(layer, h, payload, key, now)
		if !readAt.IsZero() {
			m.forwardLatency.Observe(time.Since(readAt).Seconds())
		}
	}
}
