package turn

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Refusals: every request or packet the server refuses is counted in
// helpcaster_turn_refused_total (or, for credentials,
// helpcaster_turn_auth_failures_total) under its reason and logged, at
// most one line per reason per refusalLogInterval: a flood of refused
// packets must not become a flood of log lines. The line after a quiet
// spell says how many refusals of its reason were not logged since the
// previous one. no_permission is logged at info level: a few come with
// every relayed call (the SFU's first checks reach the relay before the
// client's permission does, its last ones after the allocation is gone);
// the other reasons at warn.

// Reasons for refused allocations and packets (the policy's reasons are in
// policy.go).
const (
	ReasonQuotaUser = "quota_user"
	ReasonQuotaIP   = "quota_ip"
	ReasonTCPRelay  = "tcp_relay"
	// ReasonNoPort: no free relay port in the range (508).
	ReasonNoPort = "no_port"
	// ReasonAddressFamily: an allocation of the family the relay address
	// is not (508).
	ReasonAddressFamily = "address_family"
	// ReasonRelayPort: a requested relay port (a RESERVATION-TOKEN's) outside
	// the relay range (508).
	ReasonRelayPort = "relay_port"
	// ReasonNoPermission: a packet from or to a peer the allocation holds no
	// permission for (dropped).
	ReasonNoPermission = "no_permission"
)

// Reasons credentials are refused.
const (
	ReasonExpired     = "expired"
	ReasonMalformed   = "malformed"
	ReasonBadPassword = "bad_password"
)

// Log messages, by what was refused.
const (
	msgAllocation  = "turn allocation refused"
	msgPermission  = "turn permission refused"
	msgPacket      = "turn packet refused"
	msgCredentials = "turn credentials refused"
)

const refusalLogInterval = 10 * time.Second

// refusals holds one refusalClass per reason, all made at start-up (so
// that every reason's series exists, at 0, before the first refusal).
// Read-only after newRefusals; the classes are safe for concurrent use.
type refusals struct {
	classes map[string]*refusalClass
}

type refusalClass struct {
	reason, msg string
	level       slog.Level
	log         *slog.Logger
	interval    time.Duration
	count       prometheus.Counter
	fallback    bool         // counts the reasons the set does not know
	next        atomic.Int64 // Unix nanoseconds from which the next line may be logged
	suppressed  atomic.Int64 // refusals not logged since the last line
}

// newRefusals makes the classes of helpcaster_turn_refused_total (vec).
func newRefusals(vec *prometheus.CounterVec, log *slog.Logger, interval time.Duration) *refusals {
	r := &refusals{classes: map[string]*refusalClass{}}
	r.add(vec, log, interval, slog.LevelWarn, msgAllocation,
		ReasonQuotaUser, ReasonQuotaIP, ReasonTCPRelay, ReasonNoPort, ReasonAddressFamily, ReasonRelayPort)
	r.add(vec, log, interval, slog.LevelWarn, msgPermission, policyReasons()...)
	r.add(vec, log, interval, slog.LevelWarn, msgPacket, ReasonNodePort)
	r.add(vec, log, interval, slog.LevelInfo, msgPacket, ReasonNoPermission)
	r.classes[ReasonUnspecified].fallback = true
	return r
}

// newAuthRefusals makes the classes of
// helpcaster_turn_auth_failures_total (vec), logged at info level: expired
// credentials come with every call that outlives them.
func newAuthRefusals(vec *prometheus.CounterVec, log *slog.Logger, interval time.Duration) *refusals {
	r := &refusals{classes: map[string]*refusalClass{}}
	r.add(vec, log, interval, slog.LevelInfo, msgCredentials, ReasonExpired, ReasonMalformed, ReasonBadPassword)
	r.classes[ReasonMalformed].fallback = true
	return r
}

func (r *refusals) add(vec *prometheus.CounterVec, log *slog.Logger, interval time.Duration, level slog.Level, msg string, reasons ...string) {
	for _, reason := range reasons {
		r.classes[reason] = &refusalClass{reason: reason, msg: msg, level: level, log: log, interval: interval,
			count: vec.WithLabelValues(reason)}
	}
}

// class returns the class of reason; an unknown reason (a bug) is counted
// under the fallback class (unspecified, malformed).
func (r *refusals) class(reason string) *refusalClass {
	if c, ok := r.classes[reason]; ok {
		return c
	}
	for _, c := range r.classes {
		if c.fallback {
			return c
		}
	}
	panic("turn: refusals without a fallback class")
}

// refuse counts one refusal of reason and logs it unless a line for reason
// went out less than the interval ago.
func (r *refusals) refuse(reason string) { r.class(reason).note(time.Now()) }

// note counts one refusal at now and logs it if the interval has passed.
// Lines name the reason only: no address, no user.
func (c *refusalClass) note(now time.Time) {
	c.count.Inc()
	next := c.next.Load()
	if now.UnixNano() < next || !c.next.CompareAndSwap(next, now.Add(c.interval).UnixNano()) {
		c.suppressed.Add(1)
		return
	}
	c.log.Log(context.Background(), c.level, c.msg, "reason", c.reason, "suppressed", c.suppressed.Swap(0))
}
