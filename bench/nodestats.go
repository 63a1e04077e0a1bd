package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// nodeSample is what one scrape of a node's /metrics gives.
type nodeSample struct {
	ok        bool
	at        time.Time
	cpu       float64 // process_cpu_seconds_total
	rss       float64 // process_resident_memory_bytes
	forwarded float64 // RTP packets sent to subscribers
	placed    float64 // helpcaster_queue_placements_total
	ended     float64 // helpcaster_calls_ended_total
	bytesIn   float64 // RTP payload bytes received from publishers
	rec       recSample
}

// recSample is a node's recorder, from its metrics.
type recSample struct {
	active   float64 // helpcaster_recordings_active
	started  float64 // helpcaster_recordings_started_total
	stopped  float64 // helpcaster_recordings_stopped_total, every reason
	uploaded float64 // helpcaster_recording_upload_bytes_total
	errors   float64 // helpcaster_recording_upload_errors_total
	spool    float64 // helpcaster_recording_spool_bytes
	dropped  float64 // helpcaster_recording_dropped_packets_total
}

// hosted adds up one node's placements and calls ended over the run,
// across restarts (a counter that went down started again from 0).
type hosted struct {
	seen          bool
	last          nodeSample
	placed, ended float64
	restarts      int
}

// observe adds scrape s of node i to its totals. Called by one goroutine
// at a time (the sampler, then Run's last scrape).
func (r *runner) observe(i int, s nodeSample) {
	h := &r.hosted[i]
	if !h.seen {
		// The run's baseline.
		h.seen, h.last = true, s
		return
	}
	if s.placed < h.last.placed || s.ended < h.last.ended {
		h.restarts++
		h.placed += s.placed
		h.ended += s.ended
	} else {
		h.placed += s.placed - h.last.placed
		h.ended += s.ended - h.last.ended
	}
	h.last = s
}

// scrapeNode reads one node's metrics.
func scrapeNode(ctx context.Context, hc *http.Client, url string) (nodeSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nodeSample{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nodeSample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nodeSample{}, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nodeSample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	m, err := parseMetrics(b)
	if err != nil {
		return nodeSample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	const pkts = "helpcaster_sfu_rtp_packets_total"
	return nodeSample{ok: true, at: time.Now(), cpu: m.sum("process_cpu_seconds_total"), rss: m.sum("process_resident_memory_bytes"),
		forwarded: m.sum(pkts, "direction", "out"), placed: m.sum("helpcaster_queue_placements_total"),
		ended: m.sum("helpcaster_calls_ended_total"), bytesIn: m.sum("helpcaster_sfu_rtp_bytes_total", "direction", "in"),
		rec: recSample{active: m.sum("helpcaster_recordings_active"), started: m.sum("helpcaster_recordings_started_total"),
			stopped: m.sum("helpcaster_recordings_stopped_total"), uploaded: m.sum("helpcaster_recording_upload_bytes_total"),
			errors: m.sum("helpcaster_recording_upload_errors_total"), spool: m.sum("helpcaster_recording_spool_bytes"),
			dropped: m.sum("helpcaster_recording_dropped_packets_total")}}, nil
}
