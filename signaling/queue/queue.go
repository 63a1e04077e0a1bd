// Package queue holds waiting customers and available agents per
// organization and queue, and pairs them. Store is the seam between the
// signaling layer and where that state lives: Memory (here) for one node,
// Redis for many. Every method is atomic on its own.
package queue

import (
	"context"
	"errors"
	"time"

	"github.com/helpcaster/helpcaster/signaling/routing"
)

// ErrFull is returned by Enqueue when the queue is at its maximum length.
var ErrFull = errors.New("queue: full")

// ErrUnavailable is wrapped by a store's errors when its backing service
// cannot be reached or cannot serve right now; the same call may succeed
// later.
var ErrUnavailable = errors.New("queue: store unavailable")

// ErrExists is returned by Enqueue for a session already waiting.
var ErrExists = errors.New("queue: session already waiting")

// Entry is one waiting customer. Session is an opaque random id; nothing in
// an entry names the person.
type Entry struct {
	Org     string
	Queue   string
	Session string
	Attrs   map[string]string // routing attributes from the token
	Since   time.Time         // when the customer joined the queue
	// Node is the id of the node holding the customer's connection ("" on
	// a single node). Name is the display name its token gave (shown to the
	// agent). ResumeKey is a hash of the customer's resume secret.
	Node, Name, ResumeKey string
	// Detached is when the customer's connection was lost (zero while
	// connected). A detached customer keeps its place but is not assigned
	// until it resumes (Attach).
	Detached time.Time
	// Priority ranks the customer in its queue (0 to routing.MaxPriority;
	// higher first), as its queue's routing.Policy gives it. Within one
	// priority, the customer waiting since longest comes first, and among
	// equal Since, the first to join.
	Priority int
}

// Agent is an agent's presence: which queues it serves and how many calls
// it may hold at once.
type Agent struct {
	Org      string
	Session  string
	Queues   []string
	Capacity int // concurrent calls; values below 1 mean 1
	Skills   routing.Skills
	Node     string // the node holding the agent's connection
	Name     string // display name, shown to customers
}

// AgentState is an agent's presence as the store keeps it.
type AgentState struct {
	Session   string
	Node      string
	Skills    routing.Skills
	Capacity  int  // at least 1
	Active    int  // calls in progress
	Available bool // takes new customers (when Active < Capacity)
}

// CallRecord says where a customer's call is: its id, the node hosting its
// room ("" on a single node) and the hash of the customer's resume secret.
// Once the call has ended, Ended is the reason the customer was given: the
// record is kept for the resume grace, so that a customer whose connection
// was lost meanwhile learns of its call and its end when it resumes.
type CallRecord struct {
	Call      string `json:"call"`
	Host      string `json:"host,omitempty"`
	ResumeKey string `json:"rk"`
	Ended     string `json:"ended,omitempty"`
}

// CallRecordTTL bounds how long a call record lives if nobody deletes it.
const CallRecordTTL = 12 * time.Hour

// Sample is one recorded duration: a customer's wait when it was answered,
// or a call's length when it ended.
type Sample struct {
	At time.Time
	D  time.Duration
}

// Snapshot is a queue's state at one instant.
type Snapshot struct {
	Waiting  []Entry      // in the order they will be served
	Agents   []AgentState // agents serving the queue, connected, any state
	Answered []Sample     // waits of customers answered since the requested time, oldest first
	Handled  []Sample     // lengths of calls that ended since the requested time, oldest first
}

// Sample retention: the most recent MaxSamples of each kind, none older than
// SampleAge.
const (
	MaxSamples = 1000
	SampleAge  = time.Hour
)

// Assignment pairs one customer with one agent.
type Assignment struct {
	Org      string
	Queue    string
	Customer Entry
	Agent    string // the agent's session
	// AgentNode and AgentName are the agent's Node and Name.
	AgentNode, AgentName string
}

// Store keeps queues and agent presence. Implementations must make each call
// atomic, so that no customer is assigned twice and no agent exceeds its
// capacity even when many callers (or nodes) act at once.
type Store interface {
	// Enqueue adds e at the back of its queue and returns its 1-based
	// position. maxLen > 0 limits the queue's length (ErrFull).
	Enqueue(ctx context.Context, e Entry, maxLen int) (int, error)
	// Requeue puts a customer that was assigned but could not be connected
	// back in its queue with its original Since and Priority, so it is served
	// before everyone who joined after it.
	Requeue(ctx context.Context, e Entry) error
	// Move takes a waiting customer out of e.Queue and puts it in queue to,
	// keeping its Since, with priority (to's policy may rank it differently).
	// false if it was not waiting in e.Queue; ErrFull (nothing moved) when
	// maxLen > 0 and to already holds maxLen customers.
	Move(ctx context.Context, e Entry, to string, priority, maxLen int) (bool, error)
	// Remove takes a waiting customer out of its queue; false if it was not
	// waiting (already assigned or gone).
	Remove(ctx context.Context, org, queue, session string) (bool, error)
	// Waiting lists the sessions waiting in a queue, oldest first.
	Waiting(ctx context.Context, org, queue string) ([]string, error)
	// SetAgent records an agent's presence; available says whether it takes
	// new customers. Its calls in progress are kept.
	SetAgent(ctx context.Context, a Agent, available bool) error
	// RemoveAgent forgets an agent (it disconnected).
	RemoveAgent(ctx context.Context, org, session string) error
	// Release ends one of an agent's calls, freeing capacity.
	Release(ctx context.Context, org, agent string) error
	// Assign takes the first customer waiting in a queue (highest priority,
	// then longest waiting) for whom p finds an eligible agent, and gives it
	// to the eligible agent, available with free capacity and serving the
	// queue, that has been idle longest. p may be nil: any agent is eligible.
	// Detached customers are skipped, and attached customers beyond the
	// first ScanLimit of them are not considered. ok is false
	// when no pair is found. The customer's wait is recorded as a Sample.
	Assign(ctx context.Context, org, queue string, p *routing.Policy) (a Assignment, ok bool, err error)
	// Lookup returns a waiting customer's entry.
	Lookup(ctx context.Context, org, queue, session string) (Entry, bool, error)
	// Detach marks a waiting customer as disconnected since at: it keeps its
	// place but is not assigned. false if it was not waiting.
	Detach(ctx context.Context, org, queue, session string, at time.Time) (bool, error)
	// Attach marks a waiting customer as connected through node. false if it
	// was not waiting.
	Attach(ctx context.Context, org, queue, session, node string) (bool, error)
	// RemoveDetached removes a waiting customer only if it is detached (its
	// grace ran out and it did not resume); true if removed.
	RemoveDetached(ctx context.Context, org, queue, session string) (bool, error)
	// SaveCall records that customer session is in a call, so that it can
	// resume into it from any node. It expires after CallRecordTTL.
	SaveCall(ctx context.Context, org, session string, r CallRecord) error
	// LookupCall returns a customer's call record.
	LookupCall(ctx context.Context, org, session string) (CallRecord, bool, error)
	// DeleteCall forgets a customer's call record.
	DeleteCall(ctx context.Context, org, session string) error
	// HoldSubject makes session the holder of subject in org (subject is
	// an opaque key for a token's subject, such as a hash of it) if prev
	// holds it now ("" : nobody); false, changing nothing, if another
	// session does. A hold lasts CallRecordTTL after it was last taken.
	// It says only which connection a subject last joined on: whether that
	// one still waits or is in a call is for the queue and call records to
	// say.
	HoldSubject(ctx context.Context, org, subject, prev, session string) (bool, error)
	// SubjectHolder returns the session holding subject in org ("" : none).
	SubjectHolder(ctx context.Context, org, subject string) (string, error)
	// Mark records that node's state is in the store; Marked reports whether
	// it still is: false when the store is new to node or has lost its data
	// since (a Redis restarted without persistence).
	Mark(ctx context.Context, node string) error
	Marked(ctx context.Context, node string) (bool, error)
	// RecordHandled records the length of a call of queue that ended.
	RecordHandled(ctx context.Context, org, queue string, d time.Duration) error
	// Snapshot returns a queue's waiting customers, the agents serving it,
	// and the samples recorded at or after since.
	Snapshot(ctx context.Context, org, queue string, since time.Time) (Snapshot, error)
}

// ScanLimit is how many attached (not detached) waiting customers, from the
// front, Assign considers; with a policy it skips those no ready agent may
// take. Detached customers are not counted: stores keep the attached ones
// apart, so that any number of detached customers ahead costs Assign
// nothing. A customer further back waits until it has moved up.
const ScanLimit = 500
