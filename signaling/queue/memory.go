package queue

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/helpcaster/helpcaster/signaling/routing"
)

// Memory is a Store held in this process: the default for a single node.
type Memory struct {
	now func() time.Time

	mu    sync.Mutex
	orgs  map[string]*memOrg
	marks map[string]bool // nodes that called Mark
}

type memOrg struct {
	queues   map[string]*memQueue
	agents   map[string]*memAgent
	calls    map[string]CallRecord  // by customer session
	subjects map[string]subjectHold // by subject
}

// subjectHold is the session holding a subject, until it expires.
type subjectHold struct {
	session string
	expires time.Time
}

// memQueue keeps its waiting customers twice, in service order: all of them
// (for positions and snapshots) and the attached ones only (for Assign), so
// that Assign never walks past customers whose place is kept for a resume,
// however many there are. Every change to a queue keeps the two consistent.
type memQueue struct {
	all       []*memEntry          // in service order
	attached  []*memEntry          // those of all with a zero Detached, in service order
	bySession map[string]*memEntry // the entries of all
	seq       uint64               // last sequence number handed out
	answered  []Sample
	handled   []Sample
}

// memEntry is an entry with its sequence number, which orders customers
// of equal priority and Since by arrival.
type memEntry struct {
	Entry
	seq uint64
}

// before reports whether a is served before b. Session ids break the last
// ties (two requeued customers of equal priority and Since), so that the
// order is total and an entry can be found by binary search.
func (a *memEntry) before(b *memEntry) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if !a.Since.Equal(b.Since) {
		return a.Since.Before(b.Since)
	}
	if a.seq != b.seq {
		return a.seq < b.seq
	}
	return a.Session < b.Session
}

// place returns the index in s, a slice in service order, where e is or
// would be inserted.
func place(s []*memEntry, e *memEntry) int {
	i, _ := slices.BinarySearchFunc(s, e, func(x, t *memEntry) int {
		if x == t {
			return 0
		}
		if x.before(t) {
			return -1
		}
		return 1
	})
	return i
}

// insertOrdered puts e in s in service order; it returns s and e's index.
func insertOrdered(s []*memEntry, e *memEntry) ([]*memEntry, int) {
	i := place(s, e)
	return slices.Insert(s, i, e), i
}

// deleteOrdered takes e out of s, which holds it. It moves whichever side
// of e is shorter, so taking the first customers (what Assign does) costs
// the same however long the queue is.
func deleteOrdered(s []*memEntry, e *memEntry) []*memEntry {
	i := place(s, e)
	if i >= len(s) || s[i] != e {
		return s // not held: nothing to do
	}
	if i < len(s)/2 {
		copy(s[1:i+1], s[:i])
		s[0] = nil
		return s[1:]
	}
	copy(s[i:], s[i+1:])
	s[len(s)-1] = nil
	return s[:len(s)-1]
}

// add puts e in q; it returns e's 1-based position.
func (q *memQueue) add(e *memEntry) int {
	var i int
	q.all, i = insertOrdered(q.all, e)
	if e.Detached.IsZero() {
		q.attached, _ = insertOrdered(q.attached, e)
	}
	q.bySession[e.Session] = e
	return i + 1
}

// drop takes e, which q holds, out of q.
func (q *memQueue) drop(e *memEntry) {
	q.all = deleteOrdered(q.all, e)
	if e.Detached.IsZero() {
		q.attached = deleteOrdered(q.attached, e)
	}
	delete(q.bySession, e.Session)
}

// setDetached changes e's Detached (e is in q), moving it out of or into
// the attached customers.
func (q *memQueue) setDetached(e *memEntry, at time.Time) {
	switch was := e.Detached.IsZero(); {
	case was && !at.IsZero():
		q.attached = deleteOrdered(q.attached, e)
	case !was && at.IsZero():
		q.attached, _ = insertOrdered(q.attached, e)
	}
	e.Detached = at
}

type memAgent struct {
	node      string
	name      string
	subject   string
	queues    []string
	skills    routing.Skills
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
		o = &memOrg{queues: make(map[string]*memQueue), agents: make(map[string]*memAgent), calls: make(map[string]CallRecord),
			subjects: make(map[string]subjectHold)}
		m.orgs[id] = o
	}
	return o
}

func (o *memOrg) queue(name string) *memQueue {
	q := o.queues[name]
	if q == nil {
		q = &memQueue{bySession: make(map[string]*memEntry)}
		o.queues[name] = q
	}
	return q
}

// lookup returns a queue without creating it.
func (m *Memory) lookup(org, queue string) *memQueue {
	if o := m.orgs[org]; o != nil {
		return o.queues[queue]
	}
	return nil
}

// Enqueue implements Queues.
func (m *Memory) Enqueue(ctx context.Context, e Entry, maxLen int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.org(e.Org).queue(e.Queue)
	if q.bySession[e.Session] != nil {
		return 0, ErrExists
	}
	if maxLen > 0 && len(q.all) >= maxLen {
		return 0, ErrFull
	}
	if e.Since.IsZero() {
		e.Since = m.now()
	}
	e.Attrs = maps.Clone(e.Attrs)
	e.Detached = time.Time{}
	q.seq++
	return q.add(&memEntry{Entry: e, seq: q.seq}), nil
}

// Requeue implements Queues.
func (m *Memory) Requeue(ctx context.Context, e Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.org(e.Org).queue(e.Queue)
	if q.bySession[e.Session] != nil {
		return ErrExists
	}
	e.Attrs = maps.Clone(e.Attrs)
	e.Detached = time.Time{}
	// Sequence 0 puts it ahead of anyone of equal priority and Since.
	q.add(&memEntry{Entry: e})
	return nil
}

// Move implements Queues.
func (m *Memory) Move(ctx context.Context, e Entry, to string, priority, maxLen int) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	from, moved := m.find(e.Org, e.Queue, e.Session)
	if moved == nil {
		return false, nil
	}
	dst := m.org(e.Org).queue(to)
	if dst.bySession[e.Session] != nil {
		return false, ErrExists
	}
	if maxLen > 0 && len(dst.all) >= maxLen {
		return false, ErrFull
	}
	from.drop(moved)
	moved.Queue, moved.Priority = to, priority
	dst.seq++
	moved.seq = dst.seq
	dst.add(moved)
	return true, nil
}

// Remove implements Queues.
func (m *Memory) Remove(ctx context.Context, org, queue, session string) (bool, error) {
	return m.remove(ctx, org, queue, session, false)
}

// Waiting implements Queues.
func (m *Memory) Waiting(ctx context.Context, org, queue string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.lookup(org, queue)
	if q == nil || len(q.all) == 0 {
		return nil, nil
	}
	out := make([]string, len(q.all))
	for i, e := range q.all {
		out[i] = e.Session
	}
	return out, nil
}

// SetAgent implements Presence.
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
	ag.skills = cloneSkills(a.Skills)
	ag.node, ag.name, ag.subject = a.Node, a.Name, a.Subject
	ag.capacity = max(a.Capacity, 1)
	if available && !ag.available && ag.active == 0 {
		ag.idleSince = m.now()
	}
	ag.available = available
	return nil
}

// RemoveAgent implements Presence.
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

// Release implements Presence.
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

// Assign implements Assigner.
func (m *Memory) Assign(ctx context.Context, org, queue string, p *routing.Policy) (Assignment, bool, error) {
	if err := ctx.Err(); err != nil {
		return Assignment{}, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.orgs[org]
	q := m.lookup(org, queue)
	if q == nil || len(q.attached) == 0 {
		return Assignment{}, false, nil
	}
	// Ready agents, idle longest first (ties by id, as the Redis store).
	type ready struct {
		id string
		ag *memAgent
	}
	var agents []ready
	for id, ag := range o.agents {
		if ag.available && ag.active < ag.capacity && slices.Contains(ag.queues, queue) {
			agents = append(agents, ready{id, ag})
		}
	}
	if len(agents) == 0 {
		return Assignment{}, false, nil
	}
	slices.SortFunc(agents, func(a, b ready) int {
		if c := a.ag.idleSince.Compare(b.ag.idleSince); c != 0 {
			return c
		}
		if a.id < b.id {
			return -1
		}
		return 1
	})
	now := m.now()
	for _, e := range q.attached[:min(len(q.attached), ScanLimit)] {
		for _, r := range agents {
			if !p.Eligible(e.Attrs, r.ag.skills, now.Sub(e.Since)) {
				continue
			}
			q.drop(e)
			r.ag.active++
			q.answered = appendSample(q.answered, Sample{At: now, D: now.Sub(e.Since)}, now)
			return Assignment{Org: org, Queue: queue, Customer: e.Entry, Agent: r.id, AgentNode: r.ag.node, AgentName: r.ag.name, AgentSubject: r.ag.subject}, true, nil
		}
	}
	return Assignment{}, false, nil
}

// appendSample adds s and drops what retention no longer keeps.
func appendSample(ss []Sample, s Sample, now time.Time) []Sample {
	ss = append(ss, s)
	cut := 0
	for cut < len(ss) && (len(ss)-cut > MaxSamples || ss[cut].At.Before(now.Add(-SampleAge))) {
		cut++
	}
	if cut > 0 {
		ss = slices.Delete(ss, 0, cut)
	}
	return ss
}

// Lookup implements Queues.
func (m *Memory) Lookup(ctx context.Context, org, queue, session string) (Entry, bool, error) {
	var e Entry
	ok, err := m.edit(ctx, org, queue, session, func(_ *memQueue, x *memEntry) {
		e = x.Entry
		e.Attrs = maps.Clone(x.Attrs)
	})
	return e, ok, err
}

// Detach implements Detachment.
func (m *Memory) Detach(ctx context.Context, org, queue, session string, at time.Time) (bool, error) {
	return m.edit(ctx, org, queue, session, func(q *memQueue, e *memEntry) {
		if e.Detached.IsZero() {
			q.setDetached(e, at)
		}
	})
}

// Attach implements Detachment.
func (m *Memory) Attach(ctx context.Context, org, queue, session, node string) (bool, error) {
	return m.edit(ctx, org, queue, session, func(q *memQueue, e *memEntry) {
		q.setDetached(e, time.Time{})
		e.Node = node
	})
}

// RemoveDetached implements Detachment.
func (m *Memory) RemoveDetached(ctx context.Context, org, queue, session string) (bool, error) {
	return m.remove(ctx, org, queue, session, true)
}

// remove takes a waiting customer out of its queue (only if detached, with
// detachedOnly).
func (m *Memory) remove(ctx context.Context, org, queue, session string, detachedOnly bool) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	q, e := m.find(org, queue, session)
	if e == nil || (detachedOnly && e.Detached.IsZero()) {
		return false, nil
	}
	q.drop(e)
	return true, nil
}

// find returns a waiting customer's queue and entry (nil if it is not
// waiting). m.mu is held.
func (m *Memory) find(org, queue, session string) (*memQueue, *memEntry) {
	q := m.lookup(org, queue)
	if q == nil {
		return nil, nil
	}
	return q, q.bySession[session]
}

// edit applies f to a waiting customer's entry; false if it is not waiting.
func (m *Memory) edit(ctx context.Context, org, queue, session string, f func(*memQueue, *memEntry)) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	q, e := m.find(org, queue, session)
	if e == nil {
		return false, nil
	}
	f(q, e)
	return true, nil
}

// SaveCall implements CallRecords. Records live until deleted (a single node's
// calls end with it).
func (m *Memory) SaveCall(ctx context.Context, org, session string, r CallRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.org(org).calls[session] = r
	return nil
}

// LookupCall implements CallRecords.
func (m *Memory) LookupCall(ctx context.Context, org, session string) (CallRecord, bool, error) {
	if err := ctx.Err(); err != nil {
		return CallRecord{}, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if o := m.orgs[org]; o != nil {
		r, ok := o.calls[session]
		return r, ok, nil
	}
	return CallRecord{}, false, nil
}

// DeleteCall implements CallRecords.
func (m *Memory) DeleteCall(ctx context.Context, org, session string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if o := m.orgs[org]; o != nil {
		delete(o.calls, session)
	}
	return nil
}

// HoldSubject implements Subjects. Expired holds are swept as new ones are
// taken.
func (m *Memory) HoldSubject(ctx context.Context, org, subject, prev, session string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	o := m.org(org)
	cur := o.subjects[subject]
	if now.After(cur.expires) {
		cur = subjectHold{}
	}
	if cur.session != prev {
		return false, nil
	}
	for k, h := range o.subjects {
		if now.After(h.expires) {
			delete(o.subjects, k)
		}
	}
	o.subjects[subject] = subjectHold{session: session, expires: now.Add(CallRecordTTL)}
	return true, nil
}

// SubjectHolder implements Subjects.
func (m *Memory) SubjectHolder(ctx context.Context, org, subject string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.orgs[org]
	if o == nil {
		return "", nil
	}
	if h := o.subjects[subject]; !m.now().After(h.expires) {
		return h.session, nil
	}
	return "", nil
}

// Mark implements Marks: memory loses nothing while the process lives.
func (m *Memory) Mark(ctx context.Context, node string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.marks == nil {
		m.marks = make(map[string]bool)
	}
	m.marks[node] = true
	return nil
}

// Marked implements Marks.
func (m *Memory) Marked(ctx context.Context, node string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.marks[node], nil
}

// RecordHandled implements Stats.
func (m *Memory) RecordHandled(ctx context.Context, org, queue string, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.org(org).queue(queue)
	now := m.now()
	q.handled = appendSample(q.handled, Sample{At: now, D: d}, now)
	return nil
}

// Snapshot implements Stats.
func (m *Memory) Snapshot(ctx context.Context, org, queue string, since time.Time) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var s Snapshot
	o := m.orgs[org]
	if o == nil {
		return s, nil
	}
	if q := o.queues[queue]; q != nil && len(q.all) > 0 {
		s.Waiting = make([]Entry, len(q.all))
		for i, e := range q.all {
			s.Waiting[i] = e.Entry
			s.Waiting[i].Attrs = maps.Clone(e.Attrs)
		}
	}
	if q := o.queues[queue]; q != nil {
		s.Answered = samplesSince(q.answered, since)
		s.Handled = samplesSince(q.handled, since)
	}
	for id, ag := range o.agents {
		if slices.Contains(ag.queues, queue) {
			s.Agents = append(s.Agents, AgentState{
				Session: id, Node: ag.node, Skills: cloneSkills(ag.skills), Capacity: ag.capacity,
				Active: ag.active, Available: ag.available,
			})
		}
	}
	slices.SortFunc(s.Agents, func(a, b AgentState) int {
		if a.Session < b.Session {
			return -1
		}
		return 1
	})
	return s, nil
}

func samplesSince(ss []Sample, since time.Time) []Sample {
	i := slices.IndexFunc(ss, func(s Sample) bool { return !s.At.Before(since) })
	if i < 0 {
		return nil
	}
	return slices.Clone(ss[i:])
}

func cloneSkills(s routing.Skills) routing.Skills {
	if s == nil {
		return nil
	}
	out := make(routing.Skills, len(s))
	for k, v := range s {
		out[k] = maps.Clone(v)
	}
	return out
}

var _ Store = (*Memory)(nil)
