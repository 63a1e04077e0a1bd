package queue

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	neturl "net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/helpcaster/helpcaster/signaling/routing"

	"github.com/redis/go-redis/v9"
)

// ErrInvalidID is returned by the Redis store for an org, queue or session
// id it cannot keep: empty, or longer than MaxIDLen bytes. Nothing changes.
var ErrInvalidID = errors.New("queue: invalid id")

// MaxIDLen is the longest org, queue or session id (in bytes) the Redis store
// accepts.
const MaxIDLen = 256

// Redis is a Store kept in Redis, shared by every node that points at the
// same server (or Cluster). Each changing call is one Lua script, so it is
// atomic however many nodes act at once. The key layout is described in
// docs/architecture.md ("Queue store on Redis"). All of an org's keys carry
// the org as a hash tag (hc:{org}:...), so that they share a Cluster slot.
//
// Times come from the store's clock and are passed to the scripts as
// arguments; Redis's own clock is never read.
type Redis struct {
	c     redis.UniversalClient
	now   func() time.Time
	owned bool // Close closes c
}

// RedisOption configures a Redis store.
type RedisOption func(*Redis)

// WithClock makes the store read the time from now instead of time.Now.
func WithClock(now func() time.Time) RedisOption {
	return func(r *Redis) {
		if now != nil {
			r.now = now
		}
	}
}

// NewRedis returns a store that uses client. The caller keeps ownership of
// client: Close does not close it.
func NewRedis(client redis.UniversalClient, opts ...RedisOption) *Redis {
	r := &Redis{c: client, now: time.Now}
	for _, o := range opts {
		o(r)
	}
	return r
}

// OpenRedis connects to the Redis server at url (redis://[user:pass@]host:port[/db]
// or rediss:// for TLS), checks that it answers, and returns a store that
// owns the connection: Close it when done.
func OpenRedis(ctx context.Context, url string, opts ...RedisOption) (*Redis, error) {
	o, err := parseRedisURL(url)
	if err != nil {
		return nil, err
	}
	c := redis.NewClient(o)
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("queue: ping redis at %s: %w", o.Addr, err)
	}
	r := NewRedis(c, opts...)
	r.owned = true
	return r, nil
}

// unavailable marks err as ErrUnavailable when Redis could not be reached
// or cannot serve now (a network error, a timeout, a server still loading
// its data or without a master), as opposed to a reply saying the request
// itself failed. A caller that gave up (context.Canceled) is not unavailability.
func unavailable(err error) error {
	var re redis.Error
	if errors.As(err, &re) {
		for _, p := range []string{"LOADING", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "TRYAGAIN"} {
			if strings.HasPrefix(re.Error(), p) {
				return fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
		}
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// parseRedisURL parses a redis:// URL. Its errors leave the URL out: it may
// hold a password.
func parseRedisURL(s string) (*redis.Options, error) {
	o, err := redis.ParseURL(s)
	if err != nil {
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("queue: parse redis url: %w", err)
	}
	return o, nil
}

// DialRedis is OpenRedis without the ping: the store connects when first
// used, and a Redis that is down makes its calls fail with ErrUnavailable
// until it is back.
func DialRedis(url string, opts ...RedisOption) (*Redis, error) {
	o, err := parseRedisURL(url)
	if err != nil {
		return nil, err
	}
	r := NewRedis(redis.NewClient(o), opts...)
	r.owned = true
	return r, nil
}

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.c.Ping(ctx).Err(); err != nil {
		return unavailable(fmt.Errorf("queue: ping redis: %w", err))
	}
	return nil
}

// Close closes the connection if the store opened it (OpenRedis, DialRedis).
func (r *Redis) Close() error {
	if !r.owned {
		return nil
	}
	if err := r.c.Close(); err != nil {
		return fmt.Errorf("queue: close redis: %w", err)
	}
	return nil
}

// Key layout. o and q are escaped ids (see escapeID).
func orgPrefix(o string) string     { return "hc:{" + o + "}:" }
func agentsKey(o string) string     { return orgPrefix(o) + "agents" }
func queuePrefix(o string) string   { return orgPrefix(o) + "q:" }
func waitKey(o, q string) string    { return queuePrefix(o) + q + ":wait" }
func entriesKey(o, q string) string { return queuePrefix(o) + q + ":entries" }
func readyKey(o, q string) string   { return queuePrefix(o) + q + ":ready" }

// escapeID checks an id and encodes it for use inside a key: bytes other
// than ASCII letters, digits, '.', '_' and '-' become %XX, so that no id can
// contain the key separator ':' or the hash tag braces, and two different ids
// never give the same key.
func escapeID(kind, id string) (string, error) {
	if id == "" {
		return "", fmt.Errorf("%w: empty %s", ErrInvalidID, kind)
	}
	if len(id) > MaxIDLen {
		return "", fmt.Errorf("%w: %s of %d bytes (at most %d)", ErrInvalidID, kind, len(id), MaxIDLen)
	}
	clean := true
	for i := range len(id) {
		if !plainByte(id[i]) {
			clean = false
			break
		}
	}
	if clean {
		return id, nil
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(id) + 16)
	for i := range len(id) {
		c := id[i]
		if plainByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xF])
	}
	return b.String(), nil
}

func plainByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// checkSession validates a session id. Sessions are only hash fields and
// set members, never part of a key name, so they are not escaped.
func checkSession(kind, id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalidID, kind)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("%w: %s of %d bytes (at most %d)", ErrInvalidID, kind, len(id), MaxIDLen)
	}
	return nil
}

func escapeOrgQueue(org, queue string) (string, string, error) {
	o, err := escapeID("org", org)
	if err != nil {
		return "", "", err
	}
	q, err := escapeID("queue", queue)
	if err != nil {
		return "", "", err
	}
	return o, q, nil
}

// idleStamp encodes t as 20 decimal digits that sort bytewise as the times
// do (the int64 nanoseconds with the sign bit flipped). Agents ready for a
// queue are kept in a sorted set with equal scores and members
// "<idleStamp>:<agent>", so the first member is the agent idle longest, ties
// broken by agent id, exactly as Memory does, at full nanosecond precision.
func idleStamp(t time.Time) string {
	return fmt.Sprintf("%020d", uint64(t.UnixNano())^(1<<63))
}

// Waiting customers. A queue's wait set is a sorted set whose scores are all
// 0, so that it is ordered by member, bytewise. A member is
//
//	<priority: 3 digits, 999 minus the priority><Since: idleStamp, 20 digits><sequence: 12 digits>:<session>
//
// which sorts highest priority first, then longest waiting, then first to
// join (the queue's seq counter; a requeued customer gets 0). The entries
// hash maps the session to the member's 35-byte prefix followed by the
// entry's JSON (storedEntry), so that Remove can find the member.
const (
	prefixLen    = 35 // priority, Since and sequence
	rankLen      = 23 // priority and Since, chosen by Go; Lua adds the sequence
	sessionStart = prefixLen + 2
)

// rankPrefix is the member's priority and Since.
func rankPrefix(priority int, since time.Time) string {
	priority = min(max(priority, 0), routing.MaxPriority)
	return fmt.Sprintf("%03d%s", routing.MaxPriority-priority, idleStamp(since))
}

// storedEntry is the JSON kept per waiting customer.
type storedEntry struct {
	Since  time.Time         `json:"since"`
	Millis int64             `json:"ms"` // Since in Unix milliseconds, for the scripts
	Attrs  map[string]string `json:"attrs,omitempty"`
	Node   string            `json:"n,omitempty"`
	Name   string            `json:"nm,omitempty"`
	Resume string            `json:"rk,omitempty"`
	Sub    string            `json:"sb,omitempty"`
	RC     bool              `json:"rc,omitempty"`
}

func encodeEntry(e Entry) ([]byte, error) {
	return json.Marshal(storedEntry{
		Since: e.Since, Millis: e.Since.UnixMilli(), Attrs: e.Attrs, Node: e.Node, Name: e.Name, Resume: e.ResumeKey,
		Sub: e.Subject, RC: e.RecordConsent,
	})
}

// decodeEntry reads an entries hash value (prefix and JSON).
func decodeEntry(org, queue, session, v string) (Entry, error) {
	e := Entry{Org: org, Queue: queue, Session: session}
	if len(v) < prefixLen {
		return e, fmt.Errorf("entry of %d bytes", len(v))
	}
	inv, err := strconv.Atoi(v[:3])
	if err != nil {
		return e, fmt.Errorf("entry priority: %w", err)
	}
	e.Priority = routing.MaxPriority - inv
	var se storedEntry
	if err := json.Unmarshal([]byte(v[prefixLen:]), &se); err != nil {
		return e, err
	}
	e.Since, e.Attrs, e.Node, e.Name, e.ResumeKey = se.Since, se.Attrs, se.Node, se.Name, se.Resume
	e.Subject, e.RecordConsent = se.Sub, se.RC
	return e, nil
}

// storedAgent is the JSON kept per agent in the org's agents hash; the
// scripts read and write it.
type storedAgent struct {
	Queues    []string       `json:"queues"` // escaped queue names
	Capacity  int            `json:"cap"`
	Active    int            `json:"active"`
	Available bool           `json:"avail"`
	Idle      string         `json:"idle"`
	Skills    routing.Skills `json:"sk,omitempty"`
	Node      string         `json:"n,omitempty"`
	Name      string         `json:"nm,omitempty"`
}

func seqKey(o, q string) string        { return queuePrefix(o) + q + ":seq" }
func answeredKey(o, q string) string   { return queuePrefix(o) + q + ":answered" }
func handledKey(o, q string) string    { return queuePrefix(o) + q + ":handled" }
func detachedKey(o, q string) string   { return queuePrefix(o) + q + ":detached" }
func attachedKey(o, q string) string   { return queuePrefix(o) + q + ":attached" }
func callKey(o, session string) string { return orgPrefix(o) + "call:" + session }

// Enqueue implements Queues.
func (r *Redis) Enqueue(ctx context.Context, e Entry, maxLen int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	o, q, err := escapeOrgQueue(e.Org, e.Queue)
	if err != nil {
		return 0, fmt.Errorf("queue: enqueue: %w", err)
	}
	if err := checkSession("session", e.Session); err != nil {
		return 0, fmt.Errorf("queue: enqueue: %w", err)
	}
	if e.Since.IsZero() {
		e.Since = r.now()
	}
	raw, err := encodeEntry(e)
	if err != nil {
		return 0, fmt.Errorf("queue: enqueue %s/%s: encode entry: %w", e.Org, e.Queue, err)
	}
	n, err := enqueueScript.Run(ctx, r.c, []string{waitKey(o, q), entriesKey(o, q), seqKey(o, q), detachedKey(o, q), attachedKey(o, q)},
		e.Session, rankPrefix(e.Priority, e.Since), raw, max(maxLen, 0)).Int()
	if err != nil {
		return 0, fmt.Errorf("queue: enqueue %s/%s: %w", e.Org, e.Queue, unavailable(err))
	}
	switch n {
	case -1:
		return 0, ErrExists
	case -2:
		return 0, ErrFull
	}
	return n, nil
}

// Requeue implements Queues.
func (r *Redis) Requeue(ctx context.Context, e Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o, q, err := escapeOrgQueue(e.Org, e.Queue)
	if err != nil {
		return fmt.Errorf("queue: requeue: %w", err)
	}
	if err := checkSession("session", e.Session); err != nil {
		return fmt.Errorf("queue: requeue: %w", err)
	}
	raw, err := encodeEntry(e)
	if err != nil {
		return fmt.Errorf("queue: requeue %s/%s: encode entry: %w", e.Org, e.Queue, err)
	}
	n, err := requeueScript.Run(ctx, r.c, []string{waitKey(o, q), entriesKey(o, q), detachedKey(o, q), attachedKey(o, q)},
		e.Session, rankPrefix(e.Priority, e.Since), raw).Int()
	if err != nil {
		return fmt.Errorf("queue: requeue %s/%s: %w", e.Org, e.Queue, unavailable(err))
	}
	if n == -1 {
		return ErrExists
	}
	return nil
}

// Move implements Queues.
func (r *Redis) Move(ctx context.Context, e Entry, to string, priority, maxLen int) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	o, q, err := escapeOrgQueue(e.Org, e.Queue)
	if err != nil {
		return false, fmt.Errorf("queue: move: %w", err)
	}
	dst, err := escapeID("queue", to)
	if err != nil {
		return false, fmt.Errorf("queue: move: %w", err)
	}
	if err := checkSession("session", e.Session); err != nil {
		return false, fmt.Errorf("queue: move: %w", err)
	}
	keys := []string{waitKey(o, q), entriesKey(o, q), waitKey(o, dst), entriesKey(o, dst), seqKey(o, dst),
		detachedKey(o, q), detachedKey(o, dst), attachedKey(o, q), attachedKey(o, dst)}
	inv := fmt.Sprintf("%03d", routing.MaxPriority-min(max(priority, 0), routing.MaxPriority))
	n, err := moveScript.Run(ctx, r.c, keys, e.Session, inv, max(maxLen, 0)).Int()
	if err != nil {
		return false, fmt.Errorf("queue: move from %s/%s to %s: %w", e.Org, e.Queue, to, unavailable(err))
	}
	switch n {
	case -1:
		return false, ErrExists
	case -2:
		return false, ErrFull
	}
	return n == 1, nil
}

// Remove implements Queues.
func (r *Redis) Remove(ctx context.Context, org, queue, session string) (bool, error) {
	return r.remove(ctx, org, queue, session, false)
}

// RemoveDetached implements Detachment.
func (r *Redis) RemoveDetached(ctx context.Context, org, queue, session string) (bool, error) {
	return r.remove(ctx, org, queue, session, true)
}

func (r *Redis) remove(ctx context.Context, org, queue, session string, detachedOnly bool) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	only := "0"
	if detachedOnly {
		only = "1"
	}
	o, q, err := escapeOrgQueue(org, queue)
	if err != nil {
		return false, fmt.Errorf("queue: remove: %w", err)
	}
	if err := checkSession("session", session); err != nil {
		return false, fmt.Errorf("queue: remove: %w", err)
	}
	n, err := removeScript.Run(ctx, r.c, []string{waitKey(o, q), entriesKey(o, q), detachedKey(o, q), attachedKey(o, q)}, session, only).Int()
	if err != nil {
		return false, fmt.Errorf("queue: remove from %s/%s: %w", org, queue, unavailable(err))
	}
	return n == 1, nil
}

// Waiting implements Queues.
func (r *Redis) Waiting(ctx context.Context, org, queue string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o, q, err := escapeOrgQueue(org, queue)
	if err != nil {
		return nil, fmt.Errorf("queue: waiting: %w", err)
	}
	members, err := r.c.ZRange(ctx, waitKey(o, q), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("queue: waiting in %s/%s: %w", org, queue, unavailable(err))
	}
	if len(members) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(members))
	for _, m := range members {
		if len(m) >= sessionStart {
			ids = append(ids, m[sessionStart-1:])
		}
	}
	return ids, nil
}

// SetAgent implements Presence.
func (r *Redis) SetAgent(ctx context.Context, a Agent, available bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o, err := escapeID("org", a.Org)
	if err != nil {
		return fmt.Errorf("queue: set agent: %w", err)
	}
	if err := checkSession("agent session", a.Session); err != nil {
		return fmt.Errorf("queue: set agent: %w", err)
	}
	qs := make([]string, 0, len(a.Queues))
	for _, name := range a.Queues {
		q, err := escapeID("queue", name)
		if err != nil {
			return fmt.Errorf("queue: set agent: %w", err)
		}
		qs = append(qs, q)
	}
	queues, err := json.Marshal(qs)
	if err != nil {
		return fmt.Errorf("queue: set agent: encode queues: %w", err)
	}
	var skills []byte
	if len(a.Skills) > 0 {
		if skills, err = json.Marshal(a.Skills); err != nil {
			return fmt.Errorf("queue: set agent: encode skills: %w", err)
		}
	}
	avail := "0"
	if available {
		avail = "1"
	}
	err = setAgentScript.Run(ctx, r.c, []string{agentsKey(o)},
		queuePrefix(o), a.Session, queues, max(a.Capacity, 1), avail, idleStamp(r.now()), skills, a.Node, a.Name, a.Subject).Err()
	if err != nil {
		return fmt.Errorf("queue: set agent in %s: %w", a.Org, unavailable(err))
	}
	return nil
}

// RemoveAgent implements Presence.
func (r *Redis) RemoveAgent(ctx context.Context, org, session string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o, err := escapeID("org", org)
	if err != nil {
		return fmt.Errorf("queue: remove agent: %w", err)
	}
	if err := checkSession("agent session", session); err != nil {
		return fmt.Errorf("queue: remove agent: %w", err)
	}
	if err := removeAgentScript.Run(ctx, r.c, []string{agentsKey(o)}, queuePrefix(o), session).Err(); err != nil {
		return fmt.Errorf("queue: remove agent in %s: %w", org, unavailable(err))
	}
	return nil
}

// Release implements Presence.
func (r *Redis) Release(ctx context.Context, org, agent string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o, err := escapeID("org", org)
	if err != nil {
		return fmt.Errorf("queue: release: %w", err)
	}
	if err := checkSession("agent session", agent); err != nil {
		return fmt.Errorf("queue: release: %w", err)
	}
	err = releaseScript.Run(ctx, r.c, []string{agentsKey(o)}, queuePrefix(o), agent, idleStamp(r.now())).Err()
	if err != nil {
		return fmt.Errorf("queue: release agent in %s: %w", org, unavailable(err))
	}
	return nil
}

// Assign implements Assigner.
func (r *Redis) Assign(ctx context.Context, org, queue string, p *routing.Policy) (Assignment, bool, error) {
	if err := ctx.Err(); err != nil {
		return Assignment{}, false, err
	}
	o, q, err := escapeOrgQueue(org, queue)
	if err != nil {
		return Assignment{}, false, fmt.Errorf("queue: assign: %w", err)
	}
	now := r.now()
	keys := []string{waitKey(o, q), entriesKey(o, q), readyKey(o, q), agentsKey(o), answeredKey(o, q), detachedKey(o, q),
		attachedKey(o, q)}
	res, err := assignScript.Run(ctx, r.c, keys, queuePrefix(o), p.Encoded(), now.UnixMilli(), ScanLimit,
		now.Add(-SampleAge).UnixMilli(), MaxSamples).StringSlice()
	if errors.Is(err, redis.Nil) {
		return Assignment{}, false, nil
	}
	if err != nil {
		return Assignment{}, false, fmt.Errorf("queue: assign in %s/%s: %w", org, queue, unavailable(err))
	}
	if len(res) != 6 {
		return Assignment{}, false, fmt.Errorf("queue: assign in %s/%s: script returned %d values, want 6", org, queue, len(res))
	}
	e, err := decodeEntry(org, queue, res[0], res[1])
	if err != nil {
		// Only a foreign writer can leave an entry this store cannot
		// read; the customer has left the queue and the agent counts
		// the call, as for any assignment.
		return Assignment{}, false, fmt.Errorf("queue: assign in %s/%s: decode entry of %s: %w", org, queue, res[0], err)
	}
	return Assignment{Org: org, Queue: queue, Customer: e, Agent: res[2], AgentNode: res[3], AgentName: res[4], AgentSubject: res[5]}, true, nil
}

// RecordHandled implements Stats.
func (r *Redis) RecordHandled(ctx context.Context, org, queue string, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o, q, err := escapeOrgQueue(org, queue)
	if err != nil {
		return fmt.Errorf("queue: record handle time: %w", err)
	}
	now := r.now()
	member := fmt.Sprintf("%d:%d:%s", now.UnixMilli(), d.Milliseconds(), randomTag())
	err = recordScript.Run(ctx, r.c, []string{handledKey(o, q)}, now.UnixMilli(), member,
		now.Add(-SampleAge).UnixMilli(), MaxSamples).Err()
	if err != nil {
		return fmt.Errorf("queue: record handle time in %s/%s: %w", org, queue, unavailable(err))
	}
	return nil
}

// randomTag makes sample members unique.
func randomTag() string { return rand.Text()[:10] }

// Snapshot implements Stats. It reads everything in one MULTI/EXEC, so the
// queue and the agents are seen at one instant.
func (r *Redis) Snapshot(ctx context.Context, org, queue string, since time.Time) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, err
	}
	o, q, err := escapeOrgQueue(org, queue)
	if err != nil {
		return Snapshot{}, fmt.Errorf("queue: snapshot: %w", err)
	}
	// Samples are trimmed lazily (lua/lib/samples.lua): leave out the expired ones.
	if cut := r.now().Add(-SampleAge); since.Before(cut) {
		since = cut
	}
	from := strconv.FormatInt(since.UnixMilli(), 10)
	var (
		wait                      *redis.StringSliceCmd
		entries, agents, detached *redis.MapStringStringCmd
		answered, handled         *redis.StringSliceCmd
	)
	_, err = r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		wait = p.ZRange(ctx, waitKey(o, q), 0, -1)
		entries = p.HGetAll(ctx, entriesKey(o, q))
		agents = p.HGetAll(ctx, agentsKey(o))
		detached = p.HGetAll(ctx, detachedKey(o, q))
		answered = p.ZRangeByScore(ctx, answeredKey(o, q), &redis.ZRangeBy{Min: from, Max: "+inf"})
		handled = p.ZRangeByScore(ctx, handledKey(o, q), &redis.ZRangeBy{Min: from, Max: "+inf"})
		return nil
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("queue: snapshot of %s/%s: %w", org, queue, unavailable(err))
	}
	var s Snapshot
	ev := entries.Val()
	for _, m := range wait.Val() {
		if len(m) < sessionStart {
			continue
		}
		sid := m[sessionStart-1:]
		e, err := decodeEntry(org, queue, sid, ev[sid])
		if err != nil {
			return Snapshot{}, fmt.Errorf("queue: snapshot of %s/%s: entry of %s: %w", org, queue, sid, err)
		}
		if ms, ok := detached.Val()[sid]; ok {
			e.Detached = parseMillis(ms)
		}
		s.Waiting = append(s.Waiting, e)
	}
	for id, raw := range agents.Val() {
		var a storedAgent
		if err := json.Unmarshal([]byte(raw), &a); err != nil {
			return Snapshot{}, fmt.Errorf("queue: snapshot of %s/%s: agent %s: %w", org, queue, id, err)
		}
		if !slices.Contains(a.Queues, q) {
			continue
		}
		s.Agents = append(s.Agents, AgentState{
			Session: id, Node: a.Node, Skills: a.Skills, Capacity: max(a.Capacity, 1), Active: a.Active, Available: a.Available,
		})
	}
	slices.SortFunc(s.Agents, func(a, b AgentState) int { return strings.Compare(a.Session, b.Session) })
	if s.Answered, err = parseSamples(answered.Val()); err != nil {
		return Snapshot{}, fmt.Errorf("queue: snapshot of %s/%s: %w", org, queue, err)
	}
	if s.Handled, err = parseSamples(handled.Val()); err != nil {
		return Snapshot{}, fmt.Errorf("queue: snapshot of %s/%s: %w", org, queue, err)
	}
	return s, nil
}

// callKeyFor checks an org and session and returns the call record's key.
func callKeyFor(org, session string) (string, error) {
	o, err := escapeID("org", org)
	if err != nil {
		return "", err
	}
	sid, err := escapeID("session", session)
	if err != nil {
		return "", err
	}
	return callKey(o, sid), nil
}

// SaveCall implements CallRecords.
func (r *Redis) SaveCall(ctx context.Context, org, session string, rec CallRecord) error {
	key, err := callKeyFor(org, session)
	if err != nil {
		return fmt.Errorf("queue: save call: %w", err)
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("queue: save call: %w", err)
	}
	if err := r.c.Set(ctx, key, raw, CallRecordTTL).Err(); err != nil {
		return fmt.Errorf("queue: save call in %s: %w", org, unavailable(err))
	}
	return nil
}

// LookupCall implements CallRecords.
func (r *Redis) LookupCall(ctx context.Context, org, session string) (CallRecord, bool, error) {
	key, err := callKeyFor(org, session)
	if err != nil {
		return CallRecord{}, false, fmt.Errorf("queue: look up call: %w", err)
	}
	raw, err := r.c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return CallRecord{}, false, nil
	}
	if err != nil {
		return CallRecord{}, false, fmt.Errorf("queue: look up call in %s: %w", org, unavailable(err))
	}
	var rec CallRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return CallRecord{}, false, fmt.Errorf("queue: look up call in %s: %w", org, err)
	}
	return rec, true, nil
}

// DeleteCall implements CallRecords.
func (r *Redis) DeleteCall(ctx context.Context, org, session string) error {
	key, err := callKeyFor(org, session)
	if err != nil {
		return fmt.Errorf("queue: delete call: %w", err)
	}
	if err := r.c.Del(ctx, key).Err(); err != nil {
		return fmt.Errorf("queue: delete call in %s: %w", org, unavailable(err))
	}
	return nil
}

func subjectKey(o, subject string) string { return orgPrefix(o) + "sub:" + subject }

// HoldSubject implements Subjects.
func (r *Redis) HoldSubject(ctx context.Context, org, subject, prev, session string) (bool, error) {
	o, err := escapeID("org", org)
	if err == nil {
		subject, err = escapeID("subject", subject)
	}
	if err == nil {
		err = checkSession("session", session)
	}
	if err != nil {
		return false, fmt.Errorf("queue: hold subject: %w", err)
	}
	n, err := holdSubjectScript.Run(ctx, r.c, []string{subjectKey(o, subject)}, prev, session, CallRecordTTL.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("queue: hold subject in %s: %w", org, unavailable(err))
	}
	return n == 1, nil
}

// SubjectHolder implements Subjects.
func (r *Redis) SubjectHolder(ctx context.Context, org, subject string) (string, error) {
	o, err := escapeID("org", org)
	if err == nil {
		subject, err = escapeID("subject", subject)
	}
	if err != nil {
		return "", fmt.Errorf("queue: subject holder: %w", err)
	}
	v, err := r.c.Get(ctx, subjectKey(o, subject)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("queue: subject holder in %s: %w", org, unavailable(err))
	}
	return v, nil
}

// markKey is a node's mark, which only a loss of Redis's data removes.
func markKey(node string) string { return "hc:marks:" + neturl.PathEscape(node) }

// Mark implements Marks.
func (r *Redis) Mark(ctx context.Context, node string) error {
	if err := r.c.Set(ctx, markKey(node), "1", 0).Err(); err != nil {
		return fmt.Errorf("queue: mark: %w", unavailable(err))
	}
	return nil
}

// Marked implements Marks.
func (r *Redis) Marked(ctx context.Context, node string) (bool, error) {
	n, err := r.c.Exists(ctx, markKey(node)).Result()
	if err != nil {
		return false, fmt.Errorf("queue: marked: %w", unavailable(err))
	}
	return n == 1, nil
}

// parseMillis reads Unix milliseconds; a malformed value counts as the epoch
// (detached long ago), so that a corrupt mark can only end a grace early.
func parseMillis(s string) time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.UnixMilli(0)
	}
	return time.UnixMilli(ms)
}

// Lookup implements Queues.
func (r *Redis) Lookup(ctx context.Context, org, queue, session string) (Entry, bool, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, false, err
	}
	o, q, err := escapeOrgQueue(org, queue)
	if err != nil {
		return Entry{}, false, fmt.Errorf("queue: lookup: %w", err)
	}
	if err := checkSession("session", session); err != nil {
		return Entry{}, false, fmt.Errorf("queue: lookup: %w", err)
	}
	var v, det *redis.StringCmd
	_, err = r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		v = p.HGet(ctx, entriesKey(o, q), session)
		det = p.HGet(ctx, detachedKey(o, q), session)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Entry{}, false, fmt.Errorf("queue: lookup in %s/%s: %w", org, queue, unavailable(err))
	}
	if errors.Is(v.Err(), redis.Nil) {
		return Entry{}, false, nil
	}
	e, err := decodeEntry(org, queue, session, v.Val())
	if err != nil {
		return Entry{}, false, fmt.Errorf("queue: lookup in %s/%s: %w", org, queue, err)
	}
	if det.Err() == nil {
		e.Detached = parseMillis(det.Val())
	}
	return e, true, nil
}

// Detach implements Detachment.
func (r *Redis) Detach(ctx context.Context, org, queue, session string, at time.Time) (bool, error) {
	return r.mark(ctx, "detach", detachScript, org, queue, session, strconv.FormatInt(at.UnixMilli(), 10))
}

// Attach implements Detachment.
func (r *Redis) Attach(ctx context.Context, org, queue, session, node string) (bool, error) {
	return r.mark(ctx, "attach", attachScript, org, queue, session, node)
}

func (r *Redis) mark(ctx context.Context, op string, script *luaScript, org, queue, session, arg string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	o, q, err := escapeOrgQueue(org, queue)
	if err != nil {
		return false, fmt.Errorf("queue: %s: %w", op, err)
	}
	if err := checkSession("session", session); err != nil {
		return false, fmt.Errorf("queue: %s: %w", op, err)
	}
	n, err := script.Run(ctx, r.c, []string{entriesKey(o, q), detachedKey(o, q), attachedKey(o, q)}, session, arg).Int()
	if err != nil {
		return false, fmt.Errorf("queue: %s in %s/%s: %w", op, org, queue, unavailable(err))
	}
	return n == 1, nil
}

// parseSamples reads sample members "<at ms>:<duration ms>:<tag>".
func parseSamples(members []string) ([]Sample, error) {
	if len(members) == 0 {
		return nil, nil
	}
	out := make([]Sample, 0, len(members))
	for _, m := range members {
		at, rest, ok1 := strings.Cut(m, ":")
		d, _, ok2 := strings.Cut(rest, ":")
		ms, err1 := strconv.ParseInt(at, 10, 64)
		dms, err2 := strconv.ParseInt(d, 10, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("sample %q is malformed", m)
		}
		out = append(out, Sample{At: time.UnixMilli(ms), D: time.Duration(dms) * time.Millisecond})
	}
	return out, nil
}

var _ Store = (*Redis)(nil)
