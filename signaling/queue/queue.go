// Package queue holds waiting customers and available agents per
// organization and queue, and pairs them. Store is the seam between the
// signaling layer and where that state lives: Memory (here) for one node,
// Redis for many. Every method is atomic on its own. Store is the union of
// one small interface per role (store.go), so that a consumer can ask for
// only the roles it uses.
package queue

import (
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
	// Subject is the customer's token subject, the organization's id for
	// the user (named in the call's recording). RecordConsent: the token
	// says the customer agreed to be recorded.
	Subject       string
	RecordConsent bool
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
	Subject  string // token subject, named in recordings
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
	// AgentNode, AgentName and AgentSubject are the agent's Node, Name
	// and Subject.
	AgentNode, AgentName, AgentSubject string
}

// ScanLimit is how many attached (not detached) waiting customers, from the
// front, Assign considers; with a policy it skips those no ready agent may
// take. Detached customers are not counted: stores keep the attached ones
// apart, so that any number of detached customers ahead costs Assign
// nothing. A customer further back waits until it has moved up.
const ScanLimit = 500
