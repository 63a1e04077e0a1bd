// Package cluster is the node registry of a multi-node HelpCaster: every
// `helpcaster serve` node registers itself in Redis with a heartbeat and its
// load, a new room is placed on the least loaded live node, and a node that
// stops heartbeating is dropped from placement. A node that is draining
// (shutting down gracefully, its calls going on) keeps heartbeating with
// Draining set: it stays live, so nobody takes it for dead, but it gets no
// new room.
//
// # Storage
//
// Nodes are shared infrastructure, not org data, so the keys are not scoped by
// org, and they hold no personal data (an id, an address, load counters):
//
//	hc:nodes:seen       sorted set: member = node id, score = last heartbeat (unix ms)
//	hc:nodes:node:<id>  string: the node's JSON (id, addr, load, draining), PEXPIRE 3×TTL
//
// Liveness is decided by the sorted set and the registry's own clock (times
// are passed to Redis as arguments, never taken from Redis TIME), so tests can
// advance a fake clock. Every read first drops members older than TTL
// (ZREMRANGEBYSCORE). The detail key's PEXPIRE is only a safety net that
// cleans up after nodes nobody reads about; a live member whose detail key is
// missing is skipped. Nodes' clocks are assumed synchronised (NTP) to well
// under TTL.
//
// # Use
//
// A node calls [Registry.Run] with a func reporting its current [Node]; it
// heartbeats every TTL/3 (by default) and leaves when its context ends.
// Placement calls [Registry.Least], which never picks a draining node;
// [Registry.Live] lists all live nodes, draining ones included.
// Every key is a single-key command, so a Redis Cluster client works too.
package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

const (
	// DefaultTTL is how long a heartbeat keeps a node live.
	DefaultTTL = 10 * time.Second
	// MaxIDLen bounds a node id, in bytes.
	MaxIDLen = 128
	// MaxAddrLen bounds a node address, in bytes.
	MaxAddrLen = 1024

	keySeen       = "hc:nodes:seen"
	keyNodePrefix = "hc:nodes:node:"
	// leaveTimeout bounds Run's final Leave, which runs after ctx ended.
	leaveTimeout = 2 * time.Second
)

// ErrInvalid is wrapped by every error about a bad id, address or load.
var ErrInvalid = errors.New("cluster: invalid node")

// Load is what a node reports about itself.
type Load struct {
	Rooms        int     `json:"rooms"`
	Participants int     `json:"participants"`
	Tracks       int     `json:"tracks"`
	CPU          float64 `json:"cpu"` // fraction of the machine, 0..1
}

// Node is one registered node.
type Node struct {
	ID   string `json:"id"`
	Addr string `json:"addr"` // how other nodes and clients reach it, e.g. its public signaling URL
	Load Load   `json:"load"`
	// Draining says the node takes no new rooms: it is shutting down and
	// waits for its calls to end. It is live all the same.
	Draining bool `json:"draining,omitempty"`
	// Seen is the time of the last heartbeat. Heartbeat ignores it and
	// stamps the registry's clock; Live and Least fill it in.
	Seen time.Time `json:"-"`
}

// Registry is the node registry over a Redis client. It is safe for
// concurrent use.
type Registry struct {
	rdb     redis.UniversalClient
	ttl     time.Duration
	now     func() time.Time
	onError func(error)
}

// Option configures a Registry.
type Option func(*Registry)

// WithTTL sets how long a heartbeat keeps a node live (default 10 s).
// Values <= 0 are ignored.
func WithTTL(d time.Duration) Option {
	return func(r *Registry) {
		if d > 0 {
			r.ttl = d
		}
	}
}

// WithClock sets the clock (default time.Now); for tests.
func WithClock(now func() time.Time) Option {
	return func(r *Registry) {
		if now != nil {
			r.now = now
		}
	}
}

// WithErrorHandler receives Run's failed heartbeats (which do not stop Run:
// a Redis outage must not take the node down). Default: ignored.
func WithErrorHandler(f func(error)) Option {
	return func(r *Registry) {
		if f != nil {
			r.onError = f
		}
	}
}

// NewRegistry returns a registry over c.
func NewRegistry(c redis.UniversalClient, opts ...Option) *Registry {
	r := &Registry{rdb: c, ttl: DefaultTTL, now: time.Now, onError: func(error) {}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// TTL returns how long a heartbeat keeps a node live.
func (r *Registry) TTL() time.Duration { return r.ttl }

// ValidateID reports whether id is a usable node id: non-empty, at most
// MaxIDLen bytes, valid UTF-8, no control characters.
func ValidateID(id string) error {
	if err := checkText(id, MaxIDLen); err != nil {
		return fmt.Errorf("%w: id %q: %v", ErrInvalid, clip(id), err)
	}
	return nil
}

func checkText(s string, max int) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > max:
		return fmt.Errorf("longer than %d bytes", max)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return fmt.Errorf("control character %U", c)
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func validateNode(n Node) error {
	if err := ValidateID(n.ID); err != nil {
		return err
	}
	if err := checkText(n.Addr, MaxAddrLen); err != nil {
		return fmt.Errorf("%w: node %s: addr: %v", ErrInvalid, n.ID, err)
	}
	l := n.Load
	if l.Rooms < 0 || l.Participants < 0 || l.Tracks < 0 {
		return fmt.Errorf("%w: node %s: negative load %+v", ErrInvalid, n.ID, l)
	}
	if math.IsNaN(l.CPU) || l.CPU < 0 || l.CPU > 1 {
		return fmt.Errorf("%w: node %s: cpu %v outside 0..1", ErrInvalid, n.ID, l.CPU)
	}
	return nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// Heartbeat registers n or refreshes it: its details and load are replaced
// and its last-seen time set to the registry's clock. A node calls it every
// TTL/3 or so (Run does).
func (r *Registry) Heartbeat(ctx context.Context, n Node) error {
	if err := validateNode(n); err != nil {
		return err
	}
	n.Seen = time.Time{}
	body, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("cluster: heartbeat %s: encode: %w", n.ID, err)
	}
	now := r.now()
	// Details first, then the sorted-set entry: a reader never sees a live
	// member without details (except after the safety-net expiry).
	_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, keyNodePrefix+n.ID, body, 3*r.ttl)
		p.ZAdd(ctx, keySeen, redis.Z{Score: float64(ms(now)), Member: n.ID})
		return nil
	})
	if err != nil {
		return fmt.Errorf("cluster: heartbeat %s: %w", n.ID, err)
	}
	return nil
}

// Leave removes node id from the registry at once.
func (r *Registry) Leave(ctx context.Context, id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, keySeen, id)
		p.Del(ctx, keyNodePrefix+id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("cluster: leave %s: %w", id, err)
	}
	return nil
}

// Live returns the nodes whose last heartbeat is within TTL of the
// registry's clock, sorted by ID. It drops older entries from Redis first.
func (r *Registry) Live(ctx context.Context) ([]Node, error) {
	cutoff := ms(r.now().Add(-r.ttl))
	lim := strconv.FormatInt(cutoff, 10)
	if err := r.rdb.ZRemRangeByScore(ctx, keySeen, "-inf", "("+lim).Err(); err != nil {
		return nil, fmt.Errorf("cluster: live: drop stale nodes: %w", err)
	}
	members, err := r.rdb.ZRangeByScoreWithScores(ctx, keySeen, &redis.ZRangeBy{Min: lim, Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: live: list nodes: %w", err)
	}
	if len(members) == 0 {
		return nil, nil
	}
	// One GET per key (not MGET) so that a cluster client can split them.
	cmds := make([]*redis.StringCmd, len(members))
	_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range members {
			cmds[i] = p.Get(ctx, keyNodePrefix+fmt.Sprint(m.Member))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("cluster: live: read nodes: %w", err)
	}
	nodes := make([]Node, 0, len(members))
	for i, m := range members {
		id := fmt.Sprint(m.Member)
		body, err := cmds[i].Bytes()
		if errors.Is(err, redis.Nil) {
			continue // details expired (safety net) or left meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("cluster: live: read node %s: %w", id, err)
		}
		var n Node
		if err := json.Unmarshal(body, &n); err != nil {
			return nil, fmt.Errorf("cluster: live: decode node %s: %w", id, err)
		}
		if n.ID != id {
			return nil, fmt.Errorf("cluster: live: node key %s holds id %q", id, clip(n.ID))
		}
		n.Seen = time.UnixMilli(int64(m.Score))
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	return nodes, nil
}

// Less reports whether a is less loaded than b: fewer rooms first, then
// fewer participants, then lower CPU; ties go to the smaller ID.
func Less(a, b Node) bool {
	return cmp.Or(
		cmp.Compare(a.Load.Rooms, b.Load.Rooms),
		cmp.Compare(a.Load.Participants, b.Load.Participants),
		cmp.Compare(a.Load.CPU, b.Load.CPU),
		cmp.Compare(a.ID, b.ID),
	) < 0
}

// Least returns the least loaded live node that is not draining (see
// Less); false when there is none.
func (r *Registry) Least(ctx context.Context) (Node, bool, error) {
	nodes, err := r.Live(ctx)
	if err != nil {
		return Node{}, false, err // already wrapped by Live
	}
	var best Node
	found := false
	for _, n := range nodes {
		if !n.Draining && (!found || Less(n, best)) {
			best, found = n, true
		}
	}
	return best, found, nil
}

// Run heartbeats self() at once and then every `every` (TTL/3 when every
// <= 0) until ctx ends, then leaves the registry. A failed heartbeat goes
// to the error handler (WithErrorHandler) and Run goes on. It returns nil
// when ctx ends and the Leave succeeds, the Leave's error otherwise, and an
// ErrInvalid error at once when every >= TTL (the node would flap) or the
// first self() is invalid.
func (r *Registry) Run(ctx context.Context, self func() Node, every time.Duration) error {
	if every <= 0 {
		every = r.ttl / 3
	}
	if every >= r.ttl {
		return fmt.Errorf("%w: heartbeat interval %v not below TTL %v", ErrInvalid, every, r.ttl)
	}
	first := self()
	if err := validateNode(first); err != nil {
		return err
	}
	id := first.ID
	beat := func(n Node) {
		if n.ID != id {
			r.onError(fmt.Errorf("%w: node id changed from %s to %q while running", ErrInvalid, id, clip(n.ID)))
			return
		}
		if err := r.Heartbeat(ctx, n); err != nil && ctx.Err() == nil {
			r.onError(err)
		}
	}
	beat(first)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveTimeout)
			defer cancel()
			return r.Leave(lctx, id)
		case <-t.C:
			beat(self())
		}
	}
}
