package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/helpcaster/helpcaster/cluster"
	"github.com/helpcaster/helpcaster/sfu"
	"github.com/helpcaster/helpcaster/signaling"
)

// membership keeps this node registered in the cluster registry (with
// --redis): a heartbeat with its load every third of the registry's TTL,
// until the node shuts down.
type membership struct {
	reg   *cluster.Registry
	bus   *cluster.Bus
	rdb   *redis.Client
	id    string
	addr  func() string
	media *sfu.SFU
	log   *slog.Logger

	draining atomic.Bool // reported in every heartbeat once set

	cpuMu   sync.Mutex    // guards lastCPU and lastAt: a drain heartbeats besides Run
	lastCPU time.Duration // CPU time at the last heartbeat
	lastAt  time.Time
}

// newMembership prepares the registration of a node whose media is media
// and whose address addr returns. id "" picks a random one.
func newMembership(redisURL, id string, addr func() string, media *sfu.SFU, log *slog.Logger) (*membership, error) {
	o, err := redis.ParseURL(redisURL)
	if err != nil {
		// openStore has parsed it already; its error may repeat the URL,
		// password included, so it is not passed on.
		return nil, errors.New("redis url is not valid")
	}
	if id == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id = "node-" + hex.EncodeToString(b)
	}
	rdb := redis.NewClient(o)
	reg := cluster.NewRegistry(rdb, cluster.WithErrorHandler(func(err error) {
		log.Warn("cluster heartbeat failed", "err", err)
	}))
	return &membership{reg: reg, bus: cluster.NewBus(rdb), rdb: rdb, id: id, addr: addr, media: media, log: log}, nil
}

// run heartbeats until ctx ends, then leaves the registry.
func (m *membership) run(ctx context.Context) error {
	return m.reg.Run(ctx, m.self, 0)
}

// drainTimeout bounds the heartbeat that announces a drain.
const drainTimeout = 2 * time.Second

// drain marks the node draining in the registry: at once, and in every
// heartbeat after. A heartbeat of Run's that read the node before the mark
// may land just after this one; the next one (within TTL/3) fixes that, and
// a room placed here meanwhile is hosted here.
func (m *membership) drain(ctx context.Context) {
	if m.draining.Swap(true) {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	if err := m.reg.Heartbeat(hctx, m.self()); err != nil {
		m.log.Warn("cluster heartbeat failed; the next one says the node drains", "err", err)
	}
}

// close closes the connection to Redis; after signaling has shut down.
func (m *membership) close() { _ = m.rdb.Close() }

// membership is signaling's view of the cluster.
var _ signaling.Cluster = (*membership)(nil)

// NodeID implements signaling.Cluster.
func (m *membership) NodeID() string { return m.id }

// RoomNode implements signaling.Cluster.
func (m *membership) RoomNode(ctx context.Context) (string, error) {
	n, ok, err := m.reg.Least(ctx)
	if err != nil || !ok {
		return "", err
	}
	return n.ID, nil
}

// Live implements signaling.Cluster.
func (m *membership) Live(ctx context.Context) (map[string]bool, error) {
	nodes, err := m.reg.Live(ctx)
	if err != nil {
		return nil, err
	}
	live := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		live[n.ID] = true
	}
	return live, nil
}

// Send implements signaling.Cluster.
func (m *membership) Send(ctx context.Context, node string, msg []byte) (bool, error) {
	return m.bus.Send(ctx, node, msg)
}

// Listen implements signaling.Cluster.
func (m *membership) Listen(ctx context.Context, ready chan<- struct{}, f func([]byte)) error {
	return m.bus.Listen(ctx, m.id, ready, f)
}

// self describes this node now.
func (m *membership) self() cluster.Node {
	l := m.media.Load()
	return cluster.Node{ID: m.id, Addr: m.addr(), Draining: m.draining.Load(), Load: cluster.Load{
		Rooms: l.Rooms, Participants: l.Participants, Tracks: l.Tracks, CPU: m.cpu(),
	}}
}

// cpu is the share of the machine's CPUs the process used since the last
// call (0 on the first).
func (m *membership) cpu() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	used := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	now := time.Now()
	m.cpuMu.Lock()
	defer m.cpuMu.Unlock()
	prev, at := m.lastCPU, m.lastAt
	m.lastCPU, m.lastAt = used, now
	if at.IsZero() || !now.After(at) {
		return 0
	}
	return min(max(float64(used-prev)/float64(now.Sub(at))/float64(runtime.NumCPU()), 0), 1)
}
