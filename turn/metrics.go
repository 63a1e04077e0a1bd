package turn

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the TURN server's series. Labels hold only reasons and
// directions: never a username, an address or an id.
type metrics struct {
	active       prometheus.Gauge
	created      prometheus.Counter
	refused      *prometheus.CounterVec // reason
	authFailures *prometheus.CounterVec // reason
	bytes        *prometheus.CounterVec // direction
	packets      *prometheus.CounterVec // direction
	dropped      *prometheus.CounterVec // direction
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "helpcaster_turn_allocations_active", Help: "TURN allocations in use."}),
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "helpcaster_turn_allocations_created_total", Help: "TURN allocations created."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_turn_refused_total",
			Help: "Requests and packets refused, by reason: allocations (quota_user, quota_ip, tcp_relay, no_port, address_family, relay_port), permissions or channel binds (the peer address ranges), packets (node_port, no_permission)."},
			[]string{"reason"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_turn_auth_failures_total", Help: "TURN requests with credentials refused, by reason (expired, malformed, bad_password)."},
			[]string{"reason"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_turn_relayed_bytes_total", Help: "Bytes relayed, by direction (to_peer, to_client)."}, []string{"direction"}),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_turn_relayed_packets_total", Help: "Packets relayed, by direction (to_peer, to_client)."}, []string{"direction"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_turn_dropped_packets_total", Help: "Packets dropped, by direction: over an allocation's bandwidth cap (to_client, to_peer), or with the server's queue full (to_server)."}, []string{"direction"}),
	}
	// Every series whose labels are known now exists from start-up, at 0,
	// so that alerts see 0 rather than no data (the reasons of refused and
	// authFailures are made by newRefusals and newAuthRefusals).
	for _, dir := range []string{"to_peer", "to_client"} {
		m.bytes.WithLabelValues(dir)
		m.packets.WithLabelValues(dir)
		m.dropped.WithLabelValues(dir)
	}
	m.dropped.WithLabelValues("to_server")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.active, m.created, m.refused, m.authFailures, m.bytes, m.packets, m.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register turn metrics: %w", err)
		}
	}
	return m, nil
}
