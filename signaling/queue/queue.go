// Package queue holds waiting customers and available agents per
// organization and queue, and pairs them. Store is the seam between the
// signaling layer and where that state lives: Memory (here) for one node,
// Redis for many. Every method is atomic on its own.
package queue

import (
	"context"
	"errors"
	"time"
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
}

// Agent is an agent's presence: which queues it serves and how many calls
// it may hold at once.
type Agent struct {
	Org      string
	Session  string
	Queues   []string
	Capacity int // concurrent calls; values below 1 mean 1
}

// Assignment pairs one customer with one agent.
type Assignment struct {
	Org      string
	Queue    string
	Customer Entry
	Agent    string // the agent's session
}

// Store keeps queues and agent presence. Implementations must make each call
// atomic, so that no customer is assigned twice and no agent exceeds its
// capacity even when many callers (or nodes) act at once.
type Store interface {
	// Enqueue adds e at the back of its queue and returns its 1-based
	// position. maxLen > 0 limits the queue's length (ErrFull).
	Enqueue(ctx context.Context, e Entry, maxLen int) (int, error)
	// Requeue puts a customer that was assigned but could not be connected
	// back at the front of its queue, keeping its original Since.
	Requeue(ctx context.Context, e Entry) error
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
	// Assign takes the oldest customer waiting in a queue and gives it to the
	// available agent serving that queue with free capacity that has been
	// idle longest. ok is false when there is no customer or no agent.
	Assign(ctx context.Context, org, queue string) (a Assignment, ok bool, err error)
}
