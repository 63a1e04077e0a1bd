package queue

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Memory is a Store held in this process: the default for a single node.
type Memory struct {
	now func() time.Time

	mu   sync.Mutex
	orgs map[string]*memOrg
}

type memOrg struct {
	queues map[string][]Entry // oldest first
	agents map[string]*memAgent
}

type memAgent struct {
	queues    []string
	capacity  int
	active    int
	available bool
	idleSince time.Time
}

// NewMemory returns an empty in-memory store. now may be nil (time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, orgs: make(map[string]*memOrg)}
}

func (m *Memory) org(id string) *memOrg {
	o := m.orgs[id]
	if o == nil {
		o = &memOrg{queues: make(map[string][]Entry), agents: make(map[string]*memAgent)}
		m.orgs[id] = o
	}
	return o
}

// Enqueue implements Store.
func (m *Memory) Enqueue(ctx context.Context, e Entry, maxLen int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.org(e.Org)
	q := o.queues[e.Queue]
	if slices.ContainsFunc(q, func(x Entry) bool { return x.Session == e.Session }) {
		return 0, ErrExists
	}
	if maxLen > 0 && len(q) >= maxLen {
		return 0, ErrFull
	}
	if e.Since.IsZero() {
		e.Since = m.now()
	}
	e.Attrs = cloneMap(e.Attrs)
	o.queues[e.Queue] = append(q, e)
	return len(q) + 1, nil
}

// Requeue implements Store.
func (m *Memory) Requeue(ctx context.Context, e Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.org(e.Org)
	q := o.queues[e.Queue]
	if slices.ContainsFunc(q, func(x Entry) bool { return x.Session == e.Session }) {
		return ErrExists
	}
	e.Attrs = cloneMap(e.Attrs)
	o.queues[e.Queue] = slices.Insert(q, 0, e)
	return nil
}

// Remove implements Store.
func (m *Memory) Remove(ctx context.Context, org, queue, session string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.orgs[org]
	if o == nil {
		return false, nil
	}
	q := o.queues[queue]
	i := slices.IndexFunc(q, func(x Entry) bool { return x.Session == session })
	if i < 0 {
		return false, nil
	}
	o.queues[queue] = slices.Delete(q, i, i+1)
	return true, nil
}

// Waiting implements Store.
func (m *Memory) Waiting(ctx context.Context, org, queue string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.orgs[org]
	if o == nil {
		return nil, nil
	}
	q := o.queues[queue]
	out := make([]string, len(q))
	for i, e := range q {
		out[i] = e.Session
	}
	return out, nil
}

// SetAgent implements Store.
func (m *Memory) SetAgent(ctx context.Context, a Agent, available bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.org(a.Org)
	ag := o.agents[a.Session]
	if ag == nil {
		ag = &memAgent{idleSince: m.now()}
		o.agents[a.Session] = ag
	}
	ag.queues = slices.Clone(a.Queues)
	ag.capacity = max(a.Capacity, 1)
	if available && !ag.available && ag.active == 0 {
		ag.idleSince = m.now()
	}
	ag.available = available
	return nil
}

// RemoveAgent implements Store.
func (m *Memory) RemoveAgent(ctx context.Context, org, session string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if o := m.orgs[org]; o != nil {
		delete(o.agents, session)
	}
	return nil
}

// Release implements Store.
func (m *Memory) Release(ctx context.Context, org, agent string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.orgs[org]
	if o == nil {
		return nil
	}
	if ag := o.agents[agent]; ag != nil && ag.active > 0 {
		ag.active--
		if ag.active == 0 {
			ag.idleSince = m.now()
		}
	}
	return nil
}

// Assign implements Store.
func (m *Memory) Assign(ctx context.Context, org, queue string) (Assignment, bool, error) {
	if err := ctx.Err(); err != nil {
		return Assignment{}, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.orgs[org]
	if o == nil || len(o.queues[queue]) == 0 {
		return Assignment{}, false, nil
	}
	var best string
	var bestAgent *memAgent
	for id, ag := range o.agents {
		if !ag.available || ag.active >= ag.capacity || !slices.Contains(ag.queues, queue) {
			continue
		}
		if bestAgent == nil || ag.idleSince.Before(bestAgent.idleSince) ||
			(ag.idleSince.Equal(bestAgent.idleSince) && id < best) {
			best, bestAgent = id, ag
		}
	}
	if bestAgent == nil {
		return Assignment{}, false, nil
	}
	q := o.queues[queue]
	e := q[0]
	o.queues[queue] = slices.Delete(q, 0, 1)
	bestAgent.active++
	return Assignment{Org: org, Queue: queue, Customer: e, Agent: best}, true, nil
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
