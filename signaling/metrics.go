package signaling

import (
	"fmt"
	"slices"

	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the signaling layer's Prometheus series. Labels hold only
// organization ids, queue names, message types and error codes: never a
// session, a subject, a name or an address.
type metrics struct {
	connections  prometheus.Gauge
	messages     *prometheus.CounterVec // direction, type
	errors       *prometheus.CounterVec // code
	authFailures *prometheus.CounterVec // code
	queueLength  *prometheus.GaugeVec   // org, queue
	waitSeconds  *prometheus.HistogramVec
	placements   *prometheus.CounterVec // org, queue
	abandoned    *prometheus.CounterVec // org, queue
	callsActive  prometheus.Gauge
	monitors     prometheus.Gauge
	callsEnded   *prometheus.CounterVec // reason
	draining     prometheus.Gauge       // 1 once the server drains (drain.go)

	// Queue state by org and queue, as this node last read it from the
	// store (with several nodes, each reports the same shared queue).
	longestWait     *prometheus.GaugeVec
	agentsAvailable *prometheus.GaugeVec
	agentsBusy      *prometheus.GaugeVec
	agentsAway      *prometheus.GaugeVec
	handleSeconds   *prometheus.HistogramVec // org, queue
	overflowed      *prometheus.CounterVec   // org, queue (the queue left)
	invitesDeclined *prometheus.CounterVec   // org, queue
	invitesExpired  *prometheus.CounterVec   // org, queue

	setupsAborted *prometheus.CounterVec // org, queue: calls undone before either side was told
	repairs       *prometheus.CounterVec // kind: state the audits found wrong and put right
}

// orgQueue are the labels of per-queue series.
var orgQueue = []string{"org", "queue"}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "helpcaster_signaling_connections", Help: "Open signaling WebSocket connections."}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_signaling_messages_total", Help: "Signaling messages by direction (in, out) and type."},
			[]string{"direction", "type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_signaling_errors_total", Help: "Error messages sent to clients, by code."}, []string{"code"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_auth_failures_total", Help: "Refused joins, by error code."}, []string{"code"}),
		queueLength: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "helpcaster_queue_length", Help: "Customers waiting, as last seen by this node."}, []string{"org", "queue"}),
		waitSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "helpcaster_queue_wait_seconds", Help: "Time customers waited before being assigned.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200}}, []string{"org", "queue"}),
		placements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_queue_placements_total", Help: "Customers assigned to an agent."}, []string{"org", "queue"}),
		abandoned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_queue_abandoned_total", Help: "Customers who left the queue before being assigned."}, []string{"org", "queue"}),
		callsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "helpcaster_calls_active", Help: "Calls in progress on this node."}),
		monitors: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "helpcaster_monitors_active", Help: "Supervisors monitoring a call hosted on this node."}),
		callsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_calls_ended_total", Help: "Calls ended, by reason."}, []string{"reason"}),
		draining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "helpcaster_draining", Help: "1 while the node drains: it takes no new connections or calls and waits for its calls to end."}),
		longestWait: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "helpcaster_queue_longest_wait_seconds", Help: "How long the longest-waiting customer has waited."}, orgQueue),
		agentsAvailable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "helpcaster_queue_agents_available", Help: "Agents serving the queue with a free slot."}, orgQueue),
		agentsBusy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "helpcaster_queue_agents_busy", Help: "Agents serving the queue in calls with no free slot."}, orgQueue),
		agentsAway: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "helpcaster_queue_agents_away", Help: "Agents serving the queue who are away."}, orgQueue),
		handleSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "helpcaster_queue_handle_seconds", Help: "Length of calls, from start to end.",
			Buckets: []float64{10, 30, 60, 120, 300, 600, 1200, 2400, 3600}}, orgQueue),
		overflowed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_queue_overflowed_total", Help: "Customers moved to the overflow queue, by the queue they left."}, orgQueue),
		invitesDeclined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_queue_invites_declined_total", Help: "Invites agents declined."}, orgQueue),
		invitesExpired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_queue_invites_expired_total", Help: "Invites agents did not answer in time."}, orgQueue),
		setupsAborted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_call_setups_aborted_total",
			Help: "Calls undone before either side was told (a side left or did not answer); the customer keeps its place."}, orgQueue),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpcaster_repairs_total",
			Help: "Inconsistencies the node's audits found and put right, by kind (stale_call, agent_slot, customer_missing, customer_detached)."}, []string{"kind"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.connections, m.messages, m.errors, m.authFailures, m.queueLength,
		m.waitSeconds, m.placements, m.abandoned, m.callsActive, m.monitors, m.callsEnded, m.draining, m.longestWait, m.agentsAvailable,
		m.agentsBusy, m.agentsAway, m.handleSeconds, m.overflowed, m.invitesDeclined, m.invitesExpired, m.setupsAborted, m.repairs} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register signaling metrics: %w", err)
		}
	}
	return m, nil
}

// Label values known in advance, for preset. New values belong here too,
// so that alerts on them see 0 rather than no data.
var (
	// errorCodes are the codes of error messages (protocol/codec.go).
	errorCodes = []protocol.Code{protocol.CodeBadToken, protocol.CodeTokenExpired, protocol.CodeUnknownOrg, protocol.CodeForbiddenOrigin,
		protocol.CodeBadMessage, protocol.CodeMessageTooLarge, protocol.CodeRateLimited, protocol.CodeQueueFull, protocol.CodeUnsupportedVersion,
		protocol.CodeInvalidState, protocol.CodeBadSDP, protocol.CodeUnavailable, protocol.CodeInternal, protocol.CodeBadResume, protocol.CodeInCall}
	// authCodes are the codes a refused join or resume is counted under.
	authCodes = []protocol.Code{protocol.CodeBadToken, protocol.CodeTokenExpired, protocol.CodeUnknownOrg, protocol.CodeForbiddenOrigin,
		protocol.CodeBadResume}
	// endReasons are the reasons endCall counts a call under.
	endReasons = []string{protocol.ReasonHangup, protocol.ReasonFailed, protocol.ReasonShutdown}
	// repairKinds are the kinds of repairs the audits count (audit.go).
	repairKinds = []string{"stale_call", "agent_slot", "customer_missing", "customer_detached"}
	// messageTypes are the protocol's message types (knownType), and
	// "invalid" for the rest.
	messageTypes = []string{protocol.TypeJoin, protocol.TypeResume, protocol.TypeAvailable, protocol.TypeAway, protocol.TypeOffer,
		protocol.TypeAnswer, protocol.TypeCandidate, protocol.TypeChat, protocol.TypeHangup, protocol.TypeQuality, protocol.TypeWelcome,
		protocol.TypeQueued, protocol.TypeAgentState, protocol.TypeAssigned, protocol.TypeEnded, protocol.TypeError, protocol.TypeBye,
		protocol.TypeLayers, protocol.TypeSpeaker, protocol.TypeAccept, protocol.TypeDecline, protocol.TypeInvite, protocol.TypeWithdrawn,
		protocol.TypeQueueStats, protocol.TypeMonitor, protocol.TypeRecording, "invalid"}
)

// preset creates every series whose labels are known at start-up at 0:
// per queue of each organization, per error code, end reason, repair
// kind and message type. A family then exists from the first scrape, and
// an alert on it sees 0 rather than no data. Called once, when the server
// is built.
func (m *metrics) preset(orgs []*auth.Org) {
	for _, o := range orgs {
		for _, q := range o.Queues {
			for _, g := range []*prometheus.GaugeVec{m.queueLength, m.longestWait, m.agentsAvailable, m.agentsBusy, m.agentsAway} {
				g.WithLabelValues(o.ID, q.Name)
			}
			for _, c := range []*prometheus.CounterVec{m.placements, m.abandoned, m.overflowed, m.invitesDeclined, m.invitesExpired, m.setupsAborted} {
				c.WithLabelValues(o.ID, q.Name)
			}
			m.waitSeconds.WithLabelValues(o.ID, q.Name)
			m.handleSeconds.WithLabelValues(o.ID, q.Name)
		}
	}
	for _, c := range errorCodes {
		m.errors.WithLabelValues(string(c))
	}
	for _, c := range authCodes {
		m.authFailures.WithLabelValues(string(c))
	}
	for _, r := range endReasons {
		m.callsEnded.WithLabelValues(r)
	}
	for _, k := range repairKinds {
		m.repairs.WithLabelValues(k)
	}
	for _, dir := range []string{"in", "out"} {
		for _, typ := range messageTypes {
			m.messages.WithLabelValues(dir, typ)
		}
	}
}

// knownType bounds the type label to the protocol's message types.
func knownType(typ string) bool {
	return typ != "invalid" && slices.Contains(messageTypes, typ)
}

func (m *metrics) message(direction, typ string) {
	if !knownType(typ) {
		typ = "invalid"
	}
	m.messages.WithLabelValues(direction, typ).Inc()
}

// newRefusals makes the counter of messages refused before they were
// handled, by reason (a fixed set: session.go), each series present at 0.
func newRefusals(reg prometheus.Registerer, reasons []string) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "helpcaster_signaling_refused_total",
		Help: "Client messages refused before they were handled, by reason (too_large, binary, malformed, rate, sdp_rate, candidates)."},
		[]string{"reason"})
	for _, r := range reasons {
		c.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register signaling refusals: %w", err)
		}
	}
	return c, nil
}
