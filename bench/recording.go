package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// recordingTimeout bounds the wait for "recording started" after a call
// is assigned (Record). The server sends it right after assigned; the
// bound only keeps a run whose calls are not recorded from waiting for
// ever, and such a call then runs on as a failed one.
const recordingTimeout = 10 * time.Second

// recSeen counts the recording messages one client was sent. It is
// written by the goroutine that reads the client's messages, and read by
// the report once those goroutines are done.
type recSeen struct {
	messages int    // every recording message
	started  int    // state "started"
	stopped  string // the reason of the first "stopped"
}

func (s *recSeen) seen(m protocol.Message) {
	s.messages++
	switch m.State {
	case protocol.RecordingStarted:
		s.started++
	case protocol.RecordingStopped:
		if s.stopped == "" {
			s.stopped = m.Reason
			if s.stopped == "" {
				s.stopped = "unknown"
			}
		}
	}
}

// awaitRecording waits until m is told its call is recorded, or wctx (a
// bound within the run's ctx) ends. It returns the call's failure ("" if
// none) and whether the call is over for the harness: it ended, or the run
// did.
func awaitRecording(ctx, wctx context.Context, m *member) (reason string, over bool) {
	for {
		msg, err := m.c.Next(wctx, protocol.TypeRecording, protocol.TypeEnded, protocol.TypeError, protocol.TypeBye)
		switch {
		case err != nil && ctx.Err() != nil:
			return "", true
		case err != nil:
			return "recording_not_told", false
		case msg.Type != protocol.TypeRecording:
			return msg.Type + ":" + msg.Reason + string(msg.Code), true
		}
		m.rec.seen(msg)
		switch msg.State {
		case protocol.RecordingStarted:
			return "", false
		case protocol.RecordingStopped:
			return "recording_stopped:" + m.rec.stopped, false
		}
	}
}

// finishRecordings waits, up to FinishTimeout, until no node has a
// recording active (being recorded or still being stored), scraping each
// node every 250 ms. The calls have ended: the clients hung up.
func (r *runner) finishRecordings(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.FinishTimeout)
	defer cancel()
	r.finish = append([]nodeSample(nil), r.lastNode...)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		done, spool := true, 0.0
		for i, u := range r.cfg.MetricsURLs {
			if !r.lastNode[i].ok {
				continue
			}
			s, err := scrapeNode(ctx, r.hc, u)
			if err != nil {
				done = false
				continue
			}
			r.finish[i] = s
			spool += s.rec.spool
			if s.rec.active > 0 {
				done = false
			}
		}
		r.finishSpool = max(r.finishSpool, spool)
		if done {
			r.finished, r.finishAt = true, time.Now()
			return
		}
		select {
		case <-ctx.Done():
			r.finishAt = time.Now()
			return
		case <-tick.C:
		}
	}
}

// Recording is what a run saw of its calls' recordings: in a run with
// Record, or one whose calls were recorded anyway (a queue recording every
// call).
type Recording struct {
	Requested bool `json:"requested"` // the run's customers consented (Record)
	// Calls counts the calls whose media was started; Told those both of
	// whose sides were told "recording started", NotTold the others.
	Calls   int `json:"calls"`
	Told    int `json:"told"`
	NotTold int `json:"not_told"`
	// Stopped counts calls told their recording stopped before the call
	// ended; StoppedWhy by reason.
	Stopped    int            `json:"stopped"`
	StoppedWhy map[string]int `json:"stopped_why,omitempty"`
	// Messages counts every recording message the clients got, both sides.
	Messages int `json:"messages"`
	// CallIDs are the calls told (their rooms): where the recordings are
	// stored.
	CallIDs []string `json:"call_ids,omitempty"`

	// From the nodes' metrics. Scraped is false when a node's were missing.
	Scraped bool `json:"scraped"`
	// Started is the recordings the nodes started over the run, StoppedEarly
	// those that stopped before their call.
	Started      float64 `json:"started"`
	StoppedEarly float64 `json:"stopped_early"`
	// MediaInMiB is the RTP payload the nodes received from publishers
	// while the calls were up (from the first scrape to the last before
	// the hang-ups), MediaInMbps its rate: what there was to record.
	MediaInMiB  float64 `json:"media_in_mib"`
	MediaInMbps float64 `json:"media_in_mbps"`
	// UploadedInRunMiB was stored while the calls were up (UploadMbps its
	// rate); UploadedMiB by the time every recording was finished.
	UploadedInRunMiB float64 `json:"uploaded_in_run_mib"`
	UploadMbps       float64 `json:"upload_mbps"`
	UploadedMiB      float64 `json:"uploaded_mib"`
	UploadErrors     float64 `json:"upload_errors"`
	// SpoolMaxMiB is the most recorded data the nodes held on local disk
	// not yet stored (per-second samples, all nodes).
	SpoolMaxMiB float64 `json:"spool_max_mib"`
	// DroppedPackets is the packets the recorders dropped (queue full).
	DroppedPackets float64 `json:"dropped_packets"`
	// Finished says every recording was stored within the finish timeout;
	// FinishSeconds is how long after the hang-ups that took, and
	// FinishCPUSeconds the server CPU spent after the run's last scrape
	// until then (every node; Server.CPUSeconds has what came before).
	Finished         bool    `json:"finished"`
	FinishSeconds    float64 `json:"finish_s"`
	FinishCPUSeconds float64 `json:"finish_server_cpu_s"`
}

// recordingReport sums the recording messages and the nodes' recorder
// metrics; nil when the run neither asked for recording nor saw any.
func (r *runner) recordingReport(series []Point) *Recording {
	rec := &Recording{Requested: r.cfg.Record, StoppedWhy: map[string]int{}}
	for _, c := range r.calls {
		for _, m := range []*member{c.customer, c.agent} {
			if m != nil {
				rec.Messages += m.rec.messages
			}
		}
		if c.customer == nil || c.agent == nil || !c.customer.expect {
			continue // never reached its media: cut short or failed before
		}
		rec.Calls++
		if c.customer.rec.started > 0 && c.agent.rec.started > 0 {
			rec.Told++
			rec.CallIDs = append(rec.CallIDs, c.room)
		} else {
			rec.NotTold++
		}
		for _, m := range []*member{c.customer, c.agent} {
			if m.rec.stopped != "" {
				rec.Stopped++
				rec.StoppedWhy[m.rec.stopped]++
				break
			}
		}
	}
	if !r.cfg.Record && rec.Messages == 0 {
		return nil
	}
	rec.Scraped, rec.Finished = len(r.nodes) > 0, r.finished
	var mediaIn, inRun, span float64
	for i, first := range r.nodes {
		last, up := r.lastNode[i], r.upNode[i]
		final := last
		if i < len(r.finish) && r.finish[i].ok {
			final = r.finish[i]
		}
		if !first.ok || !last.ok || !up.ok || r.hosted[i].restarts > 0 || final.cpu < first.cpu {
			rec.Scraped = false
			continue
		}
		rec.Started += final.rec.started - first.rec.started
		rec.StoppedEarly += final.rec.stopped - first.rec.stopped
		rec.UploadErrors += final.rec.errors - first.rec.errors
		rec.DroppedPackets += final.rec.dropped - first.rec.dropped
		rec.UploadedMiB += (final.rec.uploaded - first.rec.uploaded) / (1 << 20)
		rec.FinishCPUSeconds += final.cpu - last.cpu
		inRun += up.rec.uploaded - first.rec.uploaded
		mediaIn += up.bytesIn - first.bytesIn
		span = max(span, up.at.Sub(first.at).Seconds())
	}
	rec.UploadedInRunMiB, rec.MediaInMiB = inRun/(1<<20), mediaIn/(1<<20)
	if span > 0 {
		rec.UploadMbps, rec.MediaInMbps = inRun*8/span/1e6, mediaIn*8/span/1e6
	}
	if !r.finishAt.IsZero() {
		rec.FinishSeconds = r.finishAt.Sub(r.end).Seconds()
	}
	rec.SpoolMaxMiB = r.finishSpool / (1 << 20)
	for _, p := range series {
		rec.SpoolMaxMiB = max(rec.SpoolMaxMiB, p.SpoolMiB)
	}
	return rec
}

// anomalies are the recording's errors: calls recorded without both sides
// being told, recordings that stopped early or were not stored in time.
func (rec *Recording) anomalies() []string {
	if rec == nil || !rec.Requested {
		return nil
	}
	var out []string
	if rec.NotTold > 0 {
		out = append(out, fmt.Sprintf("recording: %d of %d calls were not told \"recording started\" on both sides", rec.NotTold, rec.Calls))
	}
	if rec.Stopped > 0 {
		out = append(out, fmt.Sprintf("recording: %d calls were told their recording stopped before the call ended", rec.Stopped))
	}
	if rec.Scraped && !rec.Finished {
		out = append(out, "recording: the nodes had not finished storing the recordings when the finish timeout passed")
	}
	return out
}

// rows adds the recording's lines to the report's table.
func (rec *Recording) rows(add func(label, format string, args ...any)) {
	if rec == nil {
		return
	}
	what := "asked for (--record)"
	if !rec.Requested {
		what = "not asked for, but the calls were recorded"
	}
	add("recording", "%s: %d of %d calls told \"recording started\" on both sides, %d not; %d stopped early; %d recording messages",
		what, rec.Told, rec.Calls, rec.NotTold, rec.Stopped, rec.Messages)
	if !rec.Scraped {
		add("recording storage", "no metrics scraped")
		return
	}
	add("recording storage", "%.0f started; %.1f MiB stored while the calls were up (%.2f Mbit/s, media received %.2f Mbit/s, %.1f MiB), %.1f MiB in all",
		rec.Started, rec.UploadedInRunMiB, rec.UploadMbps, rec.MediaInMbps, rec.MediaInMiB, rec.UploadedMiB)
	finished := "every recording stored"
	if !rec.Finished {
		finished = "NOT all recordings stored"
	}
	add("recording finish", "%s %.1f s after the run, %.2f s of server CPU meanwhile; spool at most %.1f MiB; %.0f packets dropped, %.0f upload errors, %.0f stopped early",
		finished, rec.FinishSeconds, rec.FinishCPUSeconds, rec.SpoolMaxMiB, rec.DroppedPackets, rec.UploadErrors, rec.StoppedEarly)
}
