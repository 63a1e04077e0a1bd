package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("bench: write JSON report: %w", err)
	}
	return nil
}

// Title says what ran, in one line.
func (r *Report) Title() string {
	nodes := fmt.Sprintf("%d node", len(r.Config.Nodes))
	if len(r.Config.Nodes) != 1 {
		nodes += "s"
	}
	ramp := "all at once"
	if r.Config.Ramp > 0 {
		ramp = fmt.Sprintf("ramp %g/s", r.Config.Ramp)
	}
	switch r.Scenario {
	case ScenarioQueue:
		return fmt.Sprintf("queue: %d customers, %d agents on %s, %.1f s (%s), no media",
			r.Config.Customers, r.Config.Agents, nodes, r.Seconds, ramp)
	}
	if r.Scenario == ScenarioBroadcast {
		return fmt.Sprintf("broadcast: 1 publisher (%s + Opus), %d subscribers on %s, %.0f s (%s)", r.videoDesc(), r.Config.Subscribers, nodes, r.Seconds, ramp)
	}
	recorded := ""
	if r.Config.Record {
		recorded = ", recorded (customers consent)"
	}
	return fmt.Sprintf("%s: %d calls on %s, %.0f s (%s), %s + Opus%s", r.Scenario, r.Config.Calls, nodes, r.Seconds, ramp, r.videoDesc(), recorded)
}

// videoDesc says what video the publishers sent.
func (r *Report) videoDesc() string {
	video := "audio only"
	if r.Config.Video {
		video = strings.ToUpper(r.Config.Codec)
		if r.Config.Simulcast {
			video += " simulcast"
		}
		video += fmt.Sprintf(" up to %d kbit/s", r.Config.Bitrate/1000)
	}
	return video
}

func (d Dist) String() string {
	if d.N == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %.1f  p95 %.1f  p99 %.1f  max %.1f  (mean %.1f, n %d)", d.P50, d.P95, d.P99, d.Max, d.Mean, d.N)
}

// failureList is "reason n, reason n" in a stable order.
func (c Calls) failureList() string {
	keys := make([]string, 0, len(c.Failures))
	for k := range c.Failures {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, c.Failures[k])
	}
	return strings.Join(parts, ", ")
}

// rows are the report's lines as label and value, shared by the table
// and the HTML report.
func (r *Report) rows() [][2]string {
	var rows [][2]string
	add := func(label, format string, args ...any) {
		rows = append(rows, [2]string{label, fmt.Sprintf(format, args...)})
	}
	what := "calls"
	switch r.Scenario {
	case ScenarioQueue:
		what = "customers"
	case ScenarioBroadcast:
		what = "subscribers"
	}
	add(what, "target %d  started %d  up %d  failed %d", r.Calls.Target, r.Calls.Started, r.Calls.Up, r.Calls.Failed)
	if r.Calls.Failed > 0 {
		add("failures by reason", "%s", r.Calls.failureList())
	}
	if p := r.Placements; p != nil {
		add("placements", "%d, %.1f per second", p.Placed, p.PerSecond)
		add("wait for an agent (ms)", "%s", p.WaitMs)
		if r.Exact != nil {
			add("clients", "customers on %s, agents on %s; hold %.1f s (+ up to %.1f s); drop while waiting %.0f%%, in a call %.0f%%; settle %.0f s; seed %d",
				strings.Join(r.Config.CustomerURLs, " "), strings.Join(r.Config.AgentURLs, " "), r.Config.HoldS, r.Config.HoldJitterS,
				100*r.Config.Resume, 100*r.Config.ResumeInCall, r.Config.SettleS, r.Config.Seed)
			r.Exact.rows(add)
		}
	} else {
		join := "join time (ms)"
		if r.Scenario == ScenarioBroadcast {
			join = "join time, connect to monitoring (ms)"
		}
		add(join, "%s", r.JoinMs)
		add("time to first packet (ms)", "%s", r.FirstPacketMs)
		add("time to first keyframe (ms)", "%s", r.FirstFrameMs)
		add("end-to-end latency (ms)", "%s", r.LatencyMs)
		add("publishers", "%d; %d keyframe requests received, answered with %d early keyframes",
			r.Publishers.Count, r.Publishers.KeyRequests, r.Publishers.EarlyKeyframes)
		for _, m := range []struct {
			name string
			m    Media
		}{{"audio", r.Audio}, {"video", r.Video}} {
			add(m.name+" packet loss", "%d of %d lost (%.3f%%; worst stream %.3f%%), %d late, %d duplicates, %d streams, %d packets",
				m.m.Lost, m.m.Expected, m.m.LossPct, m.m.WorstLossPct, m.m.Late, m.m.Duplicates, m.m.Streams, m.m.Packets)
			add(m.name+" jitter (ms)", "%s", m.m.JitterMs)
			add(m.name+" bitrate (kbit/s)", "%s", m.m.BitrateKbps)
		}
	}
	if r.Server.Scraped {
		if p := r.Placements; p != nil {
			add("server CPU", "%.1f%% of a core (max %.1f%%), %.0f µs per placement", r.Server.CPUPct, r.Server.CPUMaxPct, p.ServerCPUPerPlacementUs)
		} else {
			per := "call"
			if r.Scenario == ScenarioBroadcast {
				per = "subscriber"
			}
			add("server CPU", "%.1f%% of a core (max %.1f%%), %.2f%% per %s", r.Server.CPUPct, r.Server.CPUMaxPct, r.Server.CPUPerCallPct, per)
		}
		add("server memory", "%.0f MiB resident at most (%.0f at the start)", r.Server.RSSMaxMiB, r.Server.RSSStartMiB)
		if r.Scenario != ScenarioQueue {
			add("server forwarding", "%.0f packets/s, %.1f µs CPU per forwarded packet", r.Server.ForwardedPPS, r.Server.CPUPerPacketUs)
		}
	} else {
		add("server", "no metrics scraped (is /metrics reachable?)")
	}
	r.Recording.rows(add)
	add("harness CPU", "%.1f%% of a core (max %.1f%%), %d video streams received, %.0f per core",
		r.Harness.CPUPct, r.Harness.MaxCPUPct, r.Harness.VideoStreams, r.Harness.StreamsPerCore)
	add("this machine", "busiest second %.0f%% of %d cores; datagrams dropped on full UDP sockets: %d at the harness's, %d in all",
		r.Harness.MachineBusyMaxPct, r.Harness.Cores, r.Harness.UDPDrops, r.Harness.MachineUDPDrops)
	for _, o := range r.Objectives {
		verdict := "met"
		if !o.Met {
			verdict = "MISSED"
		}
		add("objective "+o.Name, "%.3f against %.3f: %s", o.Value, o.Limit, verdict)
	}
	for _, n := range r.Notes {
		add("note", "%s", n)
	}
	return rows
}

// WriteTable writes the report as an aligned text table.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, r.Title())
	for _, row := range r.rows() {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("bench: write table: %w", err)
	}
	return nil
}
