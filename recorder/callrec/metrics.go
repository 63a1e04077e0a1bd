// This file holds the Recorder's counts and their Prometheus series.
// Counts of finished uploads and files are kept in totals; those of live
// ones are read from them when scraped. totals.mu makes the move from live
// to total one step, so no counter is seen to go back.

package callrec

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/helpcaster/helpcaster/recorder/upload"
)

type totals struct {
	started atomic.Int64

	mu                                    sync.Mutex
	bytes, parts, errors, retries, drops  int64 // guarded by mu: of finished uploads and files
	failedStorage, failedOther            int64 // guarded by mu
	recoveredStored, recoveredLost, calls int64 // guarded by mu: Recover's

	manifestSeconds prometheus.Histogram
}

func newTotals() *totals {
	return &totals{manifestSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "helpcaster_recording_manifest_seconds",
		Help:    "Time from a recorded call's end to its manifest stored (its files are stored before).",
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
	})}
}

// closed counts an upload closed or left: l is no longer read live.
func (t *totals) closed(l *lazyUpload, s upload.Stats) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bytes += s.BytesUploaded
	t.parts += s.Parts
	t.errors += s.Errors
	t.retries += s.Retries
	l.done.Store(true)
}

// dropped counts a finished file's drops.
func (t *totals) dropped(f *file) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !f.counted {
		t.drops += int64(f.drops())
		f.counted = true
	}
}

func (t *totals) failed(reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if reason == StoppedStorage {
		t.failedStorage++
	} else {
		t.failedOther++
	}
}

func (t *totals) recovered(calls, stored, lost int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls += calls
	t.recoveredStored += stored
	t.recoveredLost += lost
}

var (
	descActive    = prometheus.NewDesc("helpcaster_recordings_active", "Calls being recorded or finishing on this node.", nil, nil)
	descStarted   = prometheus.NewDesc("helpcaster_recordings_started_total", "Call recordings started.", nil, nil)
	descFailed    = prometheus.NewDesc("helpcaster_recordings_stopped_total", "Recordings that stopped before their call ended, by reason (storage: the spool reached its bound or its disk was full; failed: another write error).", []string{"reason"}, nil)
	descBytes     = prometheus.NewDesc("helpcaster_recording_upload_bytes_total", "Bytes of recordings stored (parts and small objects).", nil, nil)
	descParts     = prometheus.NewDesc("helpcaster_recording_upload_parts_total", "Multipart-upload parts stored.", nil, nil)
	descErrors    = prometheus.NewDesc("helpcaster_recording_upload_errors_total", "Failed storage calls of recording uploads.", nil, nil)
	descRetries   = prometheus.NewDesc("helpcaster_recording_upload_retries_total", "Storage calls of recording uploads tried again after a failure.", nil, nil)
	descSpool     = prometheus.NewDesc("helpcaster_recording_spool_bytes", "Bytes of recordings on local disk not yet stored.", nil, nil)
	descDrops     = prometheus.NewDesc("helpcaster_recording_dropped_packets_total", "Packets the recorder dropped because its queue was full (each followed by a keyframe request).", nil, nil)
	descRecovered = prometheus.NewDesc("helpcaster_recordings_recovered_total", "Calls whose recording an earlier run left unfinished, finished on start and marked incomplete.", nil, nil)
	descRecFiles  = prometheus.NewDesc("helpcaster_recording_recovered_files_total", "Files of unfinished recordings found on start, by result (stored, lost).", []string{"result"}, nil)
)

// collector reads the Recorder's counts at each scrape.
type collector struct{ r *Recorder }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descActive, descStarted, descFailed, descBytes, descParts, descErrors,
		descRetries, descSpool, descDrops, descRecovered, descRecFiles} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	// The lists are read before t.mu (never held with a call's lock);
	// what moved to the totals meanwhile is marked, and read under it.
	calls := c.r.active()
	var uploads []*lazyUpload
	var files []*file
	for _, call := range calls {
		uploads = append(uploads, call.uploads()...)
		files = append(files, call.fileList()...)
	}
	t := c.r.stats
	t.mu.Lock()
	bytes, parts, errs, retries, drops := t.bytes, t.parts, t.errors, t.retries, t.drops
	var spool int64
	for _, l := range uploads {
		if w := l.live(); w != nil {
			s := w.Stats()
			bytes += s.BytesUploaded
			parts += s.Parts
			errs += s.Errors
			retries += s.Retries
			spool += s.Spooled
		}
	}
	for _, f := range files {
		if !f.counted {
			drops += int64(f.drops())
		}
	}
	failedStorage, failedOther := t.failedStorage, t.failedOther
	rcalls, rstored, rlost := t.calls, t.recoveredStored, t.recoveredLost
	t.mu.Unlock()

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descActive, float64(len(calls)))
	counter(descStarted, t.started.Load())
	counter(descFailed, failedStorage, StoppedStorage)
	counter(descFailed, failedOther, StoppedFailed)
	counter(descBytes, bytes)
	counter(descParts, parts)
	counter(descErrors, errs)
	counter(descRetries, retries)
	gauge(descSpool, float64(spool))
	counter(descDrops, drops)
	counter(descRecovered, rcalls)
	counter(descRecFiles, rstored, "stored")
	counter(descRecFiles, rlost, "lost")
}

// register adds the Recorder's series to reg.
func (r *Recorder) register(reg prometheus.Registerer) error {
	if err := reg.Register(collector{r}); err != nil {
		return err
	}
	return reg.Register(r.stats.manifestSeconds)
}
