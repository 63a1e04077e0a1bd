package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	neturl "net/url"
	"strings"
	"time"

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

// storedEntry is the value kept per waiting customer.
type storedEntry struct {
	Since time.Time         `json:"since"`
	Attrs map[string]string `json:"attrs,omitempty"`
}

// Lua helpers shared by the agent scripts. An agent's record (a JSON object
// in the org's agents hash) holds: queues (escaped queue names), cap, active,
// avail, idle (an idleStamp). unready/ready remove/add the agent's member in
// the ready set of each of its queues; the member is present exactly when
// the agent is available and has free capacity.
const luaAgentHelpers = `
local function ready_member(ag, id) return ag.idle .. ':' .. id end
local function unready(qprefix, ag, id)
  local m = ready_member(ag, id)
  for _, q in ipairs(ag.queues) do
    redis.call('ZREM', qprefix .. q .. ':ready', m)
  end
end
local function ready(qprefix, ag, id)
  if not ag.avail or ag.active >= ag.cap then return end
  local m = ready_member(ag, id)
  for _, q in ipairs(ag.queues) do
    redis.call('ZADD', qprefix .. q .. ':ready', 0, m)
  end
end
local function save(key, ag, id)
  redis.call('HSET', key, id, cjson.encode(ag))
end
local function load(key, id)
  local raw = redis.call('HGET', key, id)
  if not raw then return nil end
  local ag = cjson.decode(raw)
  if type(ag.queues) ~= 'table' then ag.queues = {} end
  return ag
end
`

// Scripts. Immutable after creation (go-redis keeps only the SHA cache).
var (
	// KEYS: wait zset, entries hash. ARGV: session, entry JSON, maxLen.
	// Returns the 1-based position, -1 if already waiting, -2 if full.
	enqueueScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return -1 end
local n = redis.call('ZCARD', KEYS[1])
local maxlen = tonumber(ARGV[3])
if maxlen > 0 and n >= maxlen then return -2 end
local score = 0
if n > 0 then
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  score = tonumber(last[2]) + 1
end
redis.call('ZADD', KEYS[1], score, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return n + 1
`)

	// KEYS: wait zset, entries hash. ARGV: session, entry JSON.
	// Returns 1, or -1 if already waiting.
	requeueScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return -1 end
local score = 0
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first > 0 then score = tonumber(first[2]) - 1 end
redis.call('ZADD', KEYS[1], score, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
`)

	// KEYS: wait zset, entries hash. ARGV: session. Returns 1 if removed.
	removeScript = redis.NewScript(`
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`)

	// KEYS: agents hash. ARGV: queue key prefix, agent, queues (JSON array
	// of escaped names), capacity, available (1/0), now (idleStamp).
	setAgentScript = redis.NewScript(luaAgentHelpers + `
local id, now = ARGV[2], ARGV[6]
local avail = ARGV[5] == '1'
local ag = load(KEYS[1], id)
if ag then
  unready(ARGV[1], ag, id)
else
  ag = {active = 0, avail = false, idle = now}
end
ag.queues = cjson.decode(ARGV[3])
if type(ag.queues) ~= 'table' then ag.queues = {} end
ag.cap = tonumber(ARGV[4])
if avail and not ag.avail and ag.active == 0 then ag.idle = now end
ag.avail = avail
save(KEYS[1], ag, id)
ready(ARGV[1], ag, id)
return 1
`)

	// KEYS: agents hash. ARGV: queue key prefix, agent.
	removeAgentScript = redis.NewScript(luaAgentHelpers + `
local ag = load(KEYS[1], ARGV[2])
if not ag then return 0 end
unready(ARGV[1], ag, ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[2])
return 1
`)

	// KEYS: agents hash. ARGV: queue key prefix, agent, now (idleStamp).
	releaseScript = redis.NewScript(luaAgentHelpers + `
local id = ARGV[2]
local ag = load(KEYS[1], id)
if not ag or ag.active <= 0 then return 0 end
unready(ARGV[1], ag, id)
ag.active = ag.active - 1
if ag.active == 0 then ag.idle = ARGV[3] end
save(KEYS[1], ag, id)
ready(ARGV[1], ag, id)
return 1
`)

	// KEYS: wait zset, entries hash, ready zset, agents hash.
	// ARGV: queue key prefix.
	// Returns false when there is no customer or no agent, else
	// {session, entry JSON, agent}.
	assignScript = redis.NewScript(luaAgentHelpers + `
local first = redis.call('ZRANGE', KEYS[1], 0, 0)
if #first == 0 then return false end
local best = redis.call('ZRANGE', KEYS[3], 0, 0)
if #best == 0 then return false end
local id = string.sub(best[1], 22)
local ag = load(KEYS[4], id)
if not ag then
  return redis.error_reply('queue store corrupt: ready agent ' .. id .. ' has no record')
end
local sid = first[1]
local entry = redis.call('HGET', KEYS[2], sid)
redis.call('ZREM', KEYS[1], sid)
redis.call('HDEL', KEYS[2], sid)
unready(ARGV[1], ag, id)
ag.active = ag.active + 1
save(KEYS[4], ag, id)
ready(ARGV[1], ag, id)
return {sid, entry or '', id}
`)
)

// Enqueue implements Store.
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
	raw, err := json.Marshal(storedEntry{Since: e.Since, Attrs: e.Attrs})
	if err != nil {
		return 0, fmt.Errorf("queue: enqueue %s/%s: encode entry: %w", e.Org, e.Queue, err)
	}
	n, err := enqueueScript.Run(ctx, r.c, []string{waitKey(o, q), entriesKey(o, q)},
		e.Session, raw, max(maxLen, 0)).Int()
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

// Requeue implements Store.
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
	raw, err := json.Marshal(storedEntry{Since: e.Since, Attrs: e.Attrs})
	if err != nil {
		return fmt.Errorf("queue: requeue %s/%s: encode entry: %w", e.Org, e.Queue, err)
	}
	n, err := requeueScript.Run(ctx, r.c, []string{waitKey(o, q), entriesKey(o, q)}, e.Session, raw).Int()
	if err != nil {
		return fmt.Errorf("queue: requeue %s/%s: %w", e.Org, e.Queue, unavailable(err))
	}
	if n == -1 {
		return ErrExists
	}
	return nil
}

// Remove implements Store.
func (r *Redis) Remove(ctx context.Context, org, queue, session string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	o, q, err := escapeOrgQueue(org, queue)
	if err != nil {
		return false, fmt.Errorf("queue: remove: %w", err)
	}
	if err := checkSession("session", session); err != nil {
		return false, fmt.Errorf("queue: remove: %w", err)
	}
	n, err := removeScript.Run(ctx, r.c, []string{waitKey(o, q), entriesKey(o, q)}, session).Int()
	if err != nil {
		return false, fmt.Errorf("queue: remove from %s/%s: %w", org, queue, unavailable(err))
	}
	return n == 1, nil
}

// Waiting implements Store.
func (r *Redis) Waiting(ctx context.Context, org, queue string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o, q, err := escapeOrgQueue(org, queue)
	if err != nil {
		return nil, fmt.Errorf("queue: waiting: %w", err)
	}
	ids, err := r.c.ZRange(ctx, waitKey(o, q), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("queue: waiting in %s/%s: %w", org, queue, unavailable(err))
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return ids, nil
}

// SetAgent implements Store.
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
	avail := "0"
	if available {
		avail = "1"
	}
	err = setAgentScript.Run(ctx, r.c, []string{agentsKey(o)},
		queuePrefix(o), a.Session, queues, max(a.Capacity, 1), avail, idleStamp(r.now())).Err()
	if err != nil {
		return fmt.Errorf("queue: set agent in %s: %w", a.Org, unavailable(err))
	}
	return nil
}

// RemoveAgent implements Store.
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

// Release implements Store.
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

// Assign implements Store.
func (r *Redis) Assign(ctx context.Context, org, queue string) (Assignment, bool, error) {
	if err := ctx.Err(); err != nil {
		return Assignment{}, false, err
	}
	o, q, err := escapeOrgQueue(org, queue)
	if err != nil {
		return Assignment{}, false, fmt.Errorf("queue: assign: %w", err)
	}
	keys := []string{waitKey(o, q), entriesKey(o, q), readyKey(o, q), agentsKey(o)}
	res, err := assignScript.Run(ctx, r.c, keys, queuePrefix(o)).StringSlice()
	if errors.Is(err, redis.Nil) {
		return Assignment{}, false, nil
	}
	if err != nil {
		return Assignment{}, false, fmt.Errorf("queue: assign in %s/%s: %w", org, queue, unavailable(err))
	}
	if len(res) != 3 {
		return Assignment{}, false, fmt.Errorf("queue: assign in %s/%s: script returned %d values, want 3", org, queue, len(res))
	}
	var se storedEntry
	if res[1] != "" {
		if err := json.Unmarshal([]byte(res[1]), &se); err != nil {
			// Only a foreign writer can leave an entry this store cannot
			// read; the customer has left the queue and the agent counts
			// the call, as for any assignment.
			return Assignment{}, false, fmt.Errorf("queue: assign in %s/%s: decode entry of %s: %w", org, queue, res[0], err)
		}
	}
	return Assignment{
		Org:   org,
		Queue: queue,
		Customer: Entry{
			Org:     org,
			Queue:   queue,
			Session: res[0],
			Attrs:   se.Attrs,
			Since:   se.Since,
		},
		Agent: res[2],
	}, true, nil
}

var _ Store = (*Redis)(nil)
