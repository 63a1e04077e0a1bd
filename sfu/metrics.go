package sfu

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/helpcaster/helpcaster/sfu/wire"
)

// metrics are the SFU's Prometheus series. Labels carry only the media kind
// and direction, never anything about a participant.
type metrics struct {
	rooms        prometheus.Gauge
	participants prometheus.Gauge
	published    *prometheus.GaugeVec   // kind
	subscribed   *prometheus.GaugeVec   // kind
	packets      *prometheus.CounterVec // kind, direction
	bytes        *prometheus.CounterVec // kind, direction
	keyframeReqs prometheus.Counter
	nacksIn      prometheus.Counter
	retransmits  *prometheus.CounterVec // result
	// retransmitted and retransmitMissed are retransmits' two series.
	retransmitted, retransmitMissed prometheus.Counter
	dropped                         *prometheus.CounterVec // reason
	layerSwitches                   prometheus.Counter
	estimates                       prometheus.Histogram
	forwardLatency                  prometheus.Histogram
	loss                            *prometheus.HistogramVec // kind
	jitter                          *prometheus.HistogramVec // kind
	rtt                             *prometheus.HistogramVec // kind
	pausedVideo                     prometheus.Counter
	pionPath                        prometheus.Counter
	probePackets                    prometheus.Counter
}

// registerSocketMetrics exports the media socket's counts: datagrams the
// direct path took, and those passed to pion (ICE, DTLS, and media of
// connections or streams the direct path does not carry).
func registerSocketMetrics(reg prometheus.Registerer, sock *wire.Socket) error {
	for path, read := range map[string]func(wire.Stats) uint64{
		"direct": func(s wire.Stats) uint64 { return s.Routed },
		"pion":   func(s wire.Stats) uint64 { return s.Passed },
	} {
		c := prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "helpcaster_sfu_media_datagrams_total",
			Help:        "Datagrams read from the media UDP socket: taken by the direct media path (direct) or passed to pion (pion).",
			ConstLabels: prometheus.Labels{"path": path},
		}, func() float64 { return float64(read(sock.Stats())) })
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register SFU metrics: %w", err)
		}
	}
	return nil
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "helpcaster_sfu_rooms", Help: "Rooms open on this node."}),
		participants: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "helpcaster_sfu_participants", Help: "Participants in rooms on this node."}),
		published: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "helpcaster_sfu_published_tracks", Help: "Tracks received from publishers."}, []string{"kind"}),
		subscribed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "helpcaster_sfu_subscribed_tracks", Help: "Tracks forwarded to subscribers."}, []string{"kind"}),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_sfu_rtp_packets_total", Help: "RTP packets received from publishers (in) and sent to subscribers (out)."},
			[]string{"kind", "direction"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_sfu_rtp_bytes_total", Help: "RTP payload bytes received (in) and sent (out)."},
			[]string{"kind", "direction"}),
		keyframeReqs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "helpcaster_sfu_keyframe_requests_total", Help: "PLIs sent to publishers (after throttling)."}),
		nacksIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "helpcaster_sfu_nacks_received_total", Help: "NACK packets received from subscribers."}),
		retransmits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_sfu_retransmissions_total",
			Help: "Packets subscribers asked for again (NACK): resent from the packet cache (sent) or no longer held (missed)."},
			[]string{"result"}),
		layerSwitches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "helpcaster_sfu_layer_switches_total", Help: "Simulcast layer switches made by down tracks."}),
		estimates: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "helpcaster_sfu_subscriber_estimate_bps", Help: "Subscribers' send-side bandwidth estimates, sampled at each allocation.",
			Buckets: prometheus.ExponentialBuckets(50_000, 2, 10)}),
		forwardLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "helpcaster_sfu_forward_latency_seconds",
			Help:    "Time from reading a packet to writing it to a subscriber (sampled, one packet in 32).",
			Buckets: prometheus.ExponentialBuckets(2e-6, 2, 14)}),
		loss: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "helpcaster_sfu_subscriber_loss_ratio", Help: "Fraction of packets lost, from subscribers' receiver reports.",
			Buckets: []float64{0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5}}, []string{"kind"}),
		jitter: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "helpcaster_sfu_subscriber_jitter_seconds", Help: "Interarrival jitter, from subscribers' receiver reports.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 10)}, []string{"kind"}),
		rtt: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "helpcaster_sfu_subscriber_rtt_seconds", Help: "Round-trip time to subscribers, from receiver reports.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"kind"}),
		pausedVideo: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "helpcaster_sfu_video_paused_allocations_total", Help: "Allocations that paused a video track for lack of bandwidth."}),
		pionPath: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "helpcaster_sfu_pion_path_connections_total",
			Help: "Connections whose media stayed on pion's path because the direct path could not start (their selected pair was over TCP, the SFU did not learn their SRTP keys, or the connection had closed)."}),
		probePackets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "helpcaster_sfu_probe_packets_total", Help: "Padding packets sent to subscribers to probe for bandwidth."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_sfu_rtp_dropped_total", Help: "RTP packets not forwarded, by reason."}, []string{"reason"}),
	}
	m.retransmitted = m.retransmits.WithLabelValues("sent")
	m.retransmitMissed = m.retransmits.WithLabelValues("missed")
	for _, kind := range []string{"audio", "video"} {
		m.published.WithLabelValues(kind)
		m.subscribed.WithLabelValues(kind)
		for _, dir := range []string{"in", "out"} {
			m.packets.WithLabelValues(kind, dir)
			m.bytes.WithLabelValues(kind, dir)
		}
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.rooms, m.participants, m.published, m.subscribed, m.packets, m.bytes, m.keyframeReqs, m.nacksIn, m.retransmits, m.dropped, m.layerSwitches, m.estimates, m.pausedVideo, m.probePackets, m.pionPath, m.forwardLatency, m.loss, m.jitter, m.rtt} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register sfu metrics: %w", err)
		}
	}
	return m, nil
}

// streamCounters are one track's packet and byte counters, bound once so the
// forwarding path only does atomic adds.
type streamCounters struct {
	packets prometheus.Counter
	bytes   prometheus.Counter
}

func (m *metrics) counters(kind, dir string) streamCounters {
	return streamCounters{packets: m.packets.WithLabelValues(kind, dir), bytes: m.bytes.WithLabelValues(kind, dir)}
}
