package bench

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/helpcaster/helpcaster/internal/procstat"
)

// Point is one second of the run, for the charts.
type Point struct {
	T            float64 `json:"t"`              // seconds since the start
	Calls        int64   `json:"calls"`          // calls up (customers placed, for queue)
	RxMbps       float64 `json:"rx_mbps"`        // media received by all simulated clients
	ServerCPU    float64 `json:"server_cpu"`     // percent of one core, all nodes
	ServerRSSMiB float64 `json:"server_rss_mib"` // all nodes
	ForwardedPPS float64 `json:"forwarded_pps"`  // RTP packets the nodes sent to subscribers, per second
	HarnessCPU   float64 `json:"harness_cpu"`    // percent of one core
	MachineBusy  float64 `json:"machine_busy"`   // percent of all cores of this machine
	// The nodes' recorders: recorded data on local disk not yet stored,
	// and the rate recordings were stored at.
	SpoolMiB   float64 `json:"recording_spool_mib,omitempty"`
	UploadMbps float64 `json:"recording_upload_mbps,omitempty"`
}

// sampleLoop records a Point every second and shows progress until ctx
// ends.
func (r *runner) sampleLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastAt, lastCPU, lastRx := r.start, procstat.SelfCPU(), int64(0)
	lastIdle, _ := procstat.MachineIdle()
	lastShown := time.Time{}
	for {
		select {
		case <-ctx.Done():
			if r.cfg.Terminal {
				fmt.Fprintln(r.cfg.Progress)
			}
			return
		case now := <-tick.C:
			secs := now.Sub(lastAt).Seconds()
			cpu := procstat.SelfCPU()
			rx := r.rxBytes()
			p := Point{T: now.Sub(r.start).Seconds(), Calls: r.up.Load(),
				RxMbps: float64(rx-lastRx) * 8 / secs / 1e6, HarnessCPU: 100 * (cpu - lastCPU).Seconds() / secs}
			if idle, err := procstat.MachineIdle(); err == nil {
				p.MachineBusy = 100 * (1 - (idle-lastIdle).Seconds()/secs/float64(runtime.NumCPU()))
				lastIdle = idle
			}
			if d, err := procstat.UDPDrops("self"); err == nil {
				// Closed sockets take their counts with them: the highest
				// sum seen is a floor of what the run lost there.
				r.harnessDrops = max(r.harnessDrops, d)
			}
			for i, u := range r.cfg.MetricsURLs {
				s, err := scrapeNode(ctx, r.hc, u)
				if err != nil {
					continue // keep the last good sample
				}
				r.observe(i, s)
				if !r.lastNode[i].ok {
					r.lastNode[i] = s
					continue
				}
				p.ServerCPU += 100 * (s.cpu - r.lastNode[i].cpu) / secs
				p.ServerRSSMiB += s.rss / (1 << 20)
				p.ForwardedPPS += (s.forwarded - r.lastNode[i].forwarded) / secs
				p.SpoolMiB += s.rec.spool / (1 << 20)
				p.UploadMbps += (s.rec.uploaded - r.lastNode[i].rec.uploaded) * 8 / secs / 1e6
				r.lastNode[i] = s
			}
			if ctx.Err() != nil {
				continue // cut short: the scrapes may have failed
			}
			r.mu.Lock()
			r.series = append(r.series, p)
			failed := 0
			for _, n := range r.failures {
				failed += n
			}
			r.mu.Unlock()
			lastAt, lastCPU, lastRx = now, cpu, rx
			if r.cfg.Terminal || now.Sub(lastShown) >= r.cfg.ProgressEvery {
				r.show(p, failed)
				lastShown = now
			}
		}
	}
}

// show prints one status line: in place on a terminal, else a new line.
func (r *runner) show(p Point, failed int) {
	total := r.cfg.Calls
	what := "calls"
	switch r.cfg.Scenario {
	case ScenarioQueue:
		total, what = r.cfg.Customers, "placed"
	case ScenarioBroadcast:
		total, what = r.cfg.Subscribers, "subscribers"
	}
	line := fmt.Sprintf("%s %3.0f/%.0fs %s %s %d/%d (started %d, failed %d)  rx %.1f Mbit/s  server CPU %.0f%%  RSS %.0f MiB  fwd %.0f pkt/s  harness CPU %.0f%%",
		r.cfg.Scenario, p.T, r.cfg.Duration.Seconds(), bar(float64(p.Calls)/float64(max(total, 1)), 20), what, p.Calls, total,
		r.started.Load(), failed, p.RxMbps, p.ServerCPU, p.ServerRSSMiB, p.ForwardedPPS, p.HarnessCPU)
	if r.cfg.Terminal {
		fmt.Fprintf(r.cfg.Progress, "\r\033[K%s", line)
		return
	}
	fmt.Fprintln(r.cfg.Progress, line)
}

// bar draws a progress bar of width cells, f full.
func bar(f float64, width int) string {
	n := int(min(max(f, 0), 1) * float64(width))
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

// rxBytes is the media payload every simulated client received so far.
func (r *runner) rxBytes() int64 {
	r.mu.Lock()
	members := append([]*member(nil), r.members...)
	r.mu.Unlock()
	var total int64
	for _, m := range members {
		total += m.rx.bytes()
	}
	return total
}
