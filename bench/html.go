package bench

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
)

// The HTML report is one self-contained file: the table, and charts drawn
// as inline SVG (no script, no fonts or styles from elsewhere), so it opens
// offline and can be attached to a CI run.

const chartW, chartH, chartPad = 640.0, 220.0, 56.0

// line is one series of a line chart.
type line struct {
	name  string
	color string
	ys    []float64
}

// lineChart draws series over the same x values (seconds).
func lineChart(title, unit string, xs []float64, lines ...line) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<figure><figcaption>%s</figcaption><svg viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" aria-label="%s">`,
		template.HTMLEscapeString(title), chartW, chartH, chartW, chartH, template.HTMLEscapeString(title))
	maxX, maxY := 1.0, 0.0
	for _, x := range xs {
		maxX = max(maxX, x)
	}
	for _, l := range lines {
		for _, y := range l.ys {
			maxY = max(maxY, y)
		}
	}
	maxY = niceCeil(maxY)
	x0, y0, w, h := chartPad, chartH-chartPad/2, chartW-chartPad*1.5, chartH-chartPad
	axes(&b, x0, y0, w, h, maxX, maxY, unit)
	for i, l := range lines {
		var pts []string
		for j, y := range l.ys {
			if j >= len(xs) {
				break
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x0+w*xs[j]/maxX, y0-h*y/maxY))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, l.color, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="%s" font-size="11" text-anchor="end">%s</text>`, x0+w-float64(i)*110, 14.0, l.color,
			template.HTMLEscapeString(l.name))
	}
	b.WriteString("</svg></figure>")
	return template.HTML(b.String()) // built from numbers and escaped names
}

// barChart draws a histogram: one bar per bucket, labelled by its lower
// bound.
func barChart(title string, buckets []Bucket) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<figure><figcaption>%s</figcaption><svg viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" aria-label="%s">`,
		template.HTMLEscapeString(title), chartW, chartH, chartW, chartH, template.HTMLEscapeString(title))
	if len(buckets) == 0 {
		b.WriteString(`<text x="20" y="40" font-size="12">no samples</text></svg></figure>`)
		return template.HTML(b.String())
	}
	// Too many buckets for the width are merged in runs.
	per := (len(buckets) + 79) / 80
	var merged []Bucket
	for i := 0; i < len(buckets); i += per {
		m := Bucket{LowerMs: buckets[i].LowerMs}
		for _, x := range buckets[i:min(i+per, len(buckets))] {
			m.Count += x.Count
		}
		merged = append(merged, m)
	}
	maxC := uint64(1)
	for _, m := range merged {
		maxC = max(maxC, m.Count)
	}
	x0, y0, w, h := chartPad, chartH-chartPad/2, chartW-chartPad*1.5, chartH-chartPad
	axes(&b, x0, y0, w, h, 0, niceCeil(float64(maxC)), "packets")
	bw := w / float64(len(merged))
	for i, m := range merged {
		bh := h * float64(m.Count) / niceCeil(float64(maxC))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#4a7fb5"><title>≥ %.2f ms: %d</title></rect>`,
			x0+float64(i)*bw, y0-bh, max(bw-1, 0.5), bh, m.LowerMs, m.Count)
		if i%max(len(merged)/6, 1) == 0 && i+len(merged)/12 < len(merged) {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="10">%s ms</text>`, x0+float64(i)*bw, y0+12, short(m.LowerMs))
		}
	}
	b.WriteString("</svg></figure>")
	return template.HTML(b.String())
}

// axes draws the frame, the y scale (0, half, top) and, when maxX > 0,
// the x scale in seconds.
func axes(b *strings.Builder, x0, y0, w, h, maxX, maxY float64, unit string) {
	fmt.Fprintf(b, `<path d="M%.0f %.0f V%.0f H%.0f" stroke="#888" fill="none"/>`, x0, y0-h, y0, x0+w)
	for _, f := range []float64{0, 0.5, 1} {
		fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="10" text-anchor="end">%s</text>`, x0-4, y0-h*f+4, short(maxY*f))
	}
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="10">%s</text>`, x0+4, 14.0, template.HTMLEscapeString(unit))
	if maxX > 0 {
		for _, f := range []float64{0, 0.5, 1} {
			fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="10" text-anchor="middle">%.0f s</text>`, x0+w*f, y0+12, maxX*f)
		}
	}
}

// short formats an axis value: 2500 as 2.5k, 0.25 as 0.25.
func short(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	case v >= 10:
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

var htmlReport = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>HelpCaster bench: {{.Title}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:60em;color:#222}
table{border-collapse:collapse;margin:1em 0}td{padding:.2em .8em;border-bottom:1px solid #ddd;vertical-align:top}
td:first-child{font-weight:600;white-space:nowrap}figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.3em}
.missed{color:#b00;font-weight:600}
</style></head><body>
<h1>HelpCaster bench</h1>
<p>{{.Title}}<br>started {{.Started.Format "2006-01-02 15:04:05 MST"}}; nodes: {{range $i, $n := .Nodes}}{{if $i}}, {{end}}{{$n}}{{end}}</p>
<table>{{range .Rows}}<tr><td>{{index . 0}}</td><td{{if call $.Missed (index . 1)}} class="missed"{{end}}>{{index . 1}}</td></tr>{{end}}</table>
{{range .Charts}}{{.}}{{end}}
</body></html>
`))

// WriteHTML writes the report as a single self-contained HTML page.
func (r *Report) WriteHTML(w io.Writer) error {
	xs := make([]float64, len(r.Series))
	var rx, scpu, hcpu, fwd, calls, rss, spool, upload []float64
	for i, p := range r.Series {
		xs[i] = p.T
		rx = append(rx, p.RxMbps)
		scpu = append(scpu, p.ServerCPU)
		hcpu = append(hcpu, p.HarnessCPU)
		fwd = append(fwd, p.ForwardedPPS)
		calls = append(calls, float64(p.Calls))
		rss = append(rss, p.ServerRSSMiB)
		spool = append(spool, p.SpoolMiB)
		upload = append(upload, p.UploadMbps)
	}
	var charts []template.HTML
	if r.Scenario != ScenarioQueue {
		charts = append(charts,
			barChart("End-to-end latency distribution (capture to arrival, every packet)", r.Latency),
			lineChart("Received bitrate over time (all simulated clients)", "Mbit/s", xs, line{"received", "#4a7fb5", rx}))
	}
	charts = append(charts,
		lineChart("CPU over time", "% of a core", xs, line{"server CPU", "#b5534a", scpu}, line{"harness CPU", "#5a9e4b", hcpu}),
		lineChart("Server memory over time", "MiB", xs, line{"server RSS", "#8a5ab5", rss}),
		lineChart("Calls up over time", "calls", xs, line{"calls up", "#444", calls}))
	if r.Scenario != ScenarioQueue {
		charts = append(charts, lineChart("Packets forwarded by the server", "packets/s", xs, line{"forwarded", "#b58a4a", fwd}))
	}
	if r.Recording != nil {
		charts = append(charts,
			lineChart("Recordings stored (upload rate)", "Mbit/s", xs, line{"stored", "#4a9eb5", upload}),
			lineChart("Recordings on local disk not yet stored (spool)", "MiB", xs, line{"spool", "#b54a8a", spool}))
	}
	data := struct {
		Title   string
		Started any
		Nodes   []string
		Rows    [][2]string
		Charts  []template.HTML
		Missed  func(string) bool
	}{r.Title(), r.Started, r.Config.Nodes, r.rows(), charts, func(v string) bool { return strings.HasSuffix(v, ": MISSED") }}
	if err := htmlReport.Execute(w, data); err != nil {
		return fmt.Errorf("bench: write HTML report: %w", err)
	}
	return nil
}
