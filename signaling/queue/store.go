package queue

// The store's interfaces, one per role, and Store, their union. Memory and
// Redis implement Store; a consumer that needs only some roles declares
// those (or an interface embedding them), so that what it may touch is
// written in its type and a test can hand it a smaller fake.
//
// Every method of every role is atomic on its own, even when many callers
// (or nodes sharing one Redis) act at once: no customer is assigned twice,
// and no agent exceeds its capacity.

import (
	"context"
	"time"

	"github.com/helpcaster/helpcaster/signaling/routing"
)

// Queues keeps the waiting customers of each queue, in the order they will
// be served.
type Queues interface {
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
	// Lookup returns a waiting customer's entry.
	Lookup(ctx context.Context, org, queue, session string) (Entry, bool, error)
}

// Detachment keeps the place of a waiting customer whose connection was
// lost, for as long as it may resume: a detached customer stays in its queue
// but is not assigned.
type Detachment interface {
	// Detach marks a waiting customer as disconnected since at: it keeps its
	// place but is not assigned. false if it was not waiting.
	Detach(ctx context.Context, org, queue, session string, at time.Time) (bool, error)
	// Attach marks a waiting customer as connected through node. false if it
	// was not waiting.
	Attach(ctx context.Context, org, queue, session, node string) (bool, error)
	// RemoveDetached removes a waiting customer only if it is detached (its
	// grace ran out and it did not resume); true if removed.
	RemoveDetached(ctx context.Context, org, queue, session string) (bool, error)
}

// Assigner pairs a queue's waiting customers with the agents serving it: the
// one place where Queues and Presence meet.
type Assigner interface {
	// Assign takes the first customer waiting in a queue (highest priority,
	// then longest waiting) for whom p finds an eligible agent, and gives it
	// to the eligible agent, available with free capacity and serving the
	// queue, that has been idle longest. p may be nil: any agent is eligible.
	// Detached customers are skipped, and attached customers beyond the
	// first ScanLimit of them are not considered. ok is false
	// when no pair is found. The customer's wait is recorded as a Sample.
	Assign(ctx context.Context, org, queue string, p *routing.Policy) (a Assignment, ok bool, err error)
}

// Presence keeps each agent's presence: the queues it serves, whether it
// takes new customers, and its calls in progress against its capacity.
type Presence interface {
	// SetAgent records an agent's presence; available says whether it takes
	// new customers. Its calls in progress are kept.
	SetAgent(ctx context.Context, a Agent, available bool) error
	// RemoveAgent forgets an agent (it disconnected).
	RemoveAgent(ctx context.Context, org, session string) error
	// Release ends one of an agent's calls, freeing capacity.
	Release(ctx context.Context, org, agent string) error
}

// CallRecords says where each customer's call is, so that a customer can
// resume into it from any node.
type CallRecords interface {
	// SaveCall records that customer session is in a call, so that it can
	// resume into it from any node. It expires after CallRecordTTL.
	SaveCall(ctx context.Context, org, session string, r CallRecord) error
	// LookupCall returns a customer's call record.
	LookupCall(ctx context.Context, org, session string) (CallRecord, bool, error)
	// DeleteCall forgets a customer's call record.
	DeleteCall(ctx context.Context, org, session string) error
}

// Subjects says which session each token subject last joined on, so that
// one subject holds one place across nodes.
type Subjects interface {
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
}

// Marks tells a node whether the store still holds what the node wrote, so
// that it can write its state again after the store lost its data.
type Marks interface {
	// Mark records that node's state is in the store; Marked reports whether
	// it still is: false when the store is new to node or has lost its data
	// since (a Redis restarted without persistence).
	Mark(ctx context.Context, node string) error
	Marked(ctx context.Context, node string) (bool, error)
}

// Stats keeps the samples behind a queue's statistics and reads a queue's
// state at one instant.
type Stats interface {
	// RecordHandled records the length of a call of queue that ended.
	RecordHandled(ctx context.Context, org, queue string, d time.Duration) error
	// Snapshot returns a queue's waiting customers, the agents serving it,
	// and the samples recorded at or after since.
	Snapshot(ctx context.Context, org, queue string, since time.Time) (Snapshot, error)
}

// Store is every role at once: what Memory and Redis implement, and what a
// node hands to signaling.
type Store interface {
	Queues
	Detachment
	Assigner
	Presence
	CallRecords
	Subjects
	Marks
	Stats
}
