package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"time"
)

// nodeSample is what one scrape of a node's /metrics gives.
type nodeSample struct {
	ok        bool
	at        time.Time
	cpu       float64 // process_cpu_seconds_total
	rss       float64 // process_resident_memory_bytes
	forwarded float64 // RTP packets sent to subscribers
	received  float64 // RTP packets received from publishers
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
		forwarded: m.sum(pkts, "direction", "out"), received: m.sum(pkts, "direction", "in")}, nil
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
