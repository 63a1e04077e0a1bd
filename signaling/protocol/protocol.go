// Package protocol holds the HelpCaster signaling messages (version 1) and
// their codec. Every message on /v1/signal is one JSON object (one WebSocket
// text frame) with a version, a type and the fields that type uses.
// docs/protocol.md is the prose form of this file.
package protocol

// Version is the protocol version this package speaks.
const Version = 1

// Message types sent by clients.
const (
	TypeJoin      = "join"      // first message: authenticate with a token
	TypeResume    = "resume"    // first message instead of join: a customer takes back its place or its call
	TypeAvailable = "available" // agent: ready for the next customer
	TypeAway      = "away"      // agent: take no new customers
	TypeOffer     = "offer"     // SDP offer (client→server for pc "pub", server→client for pc "sub")
	TypeAnswer    = "answer"    // SDP answer (client→server for pc "sub", server→client for pc "pub")
	TypeCandidate = "candidate" // trickle ICE candidate, either direction
	TypeChat      = "chat"      // chat text, either direction
	TypeHangup    = "hangup"    // end the call (or leave the queue)
	TypeQuality   = "quality"   // the video quality a client wants to receive
	TypeAccept    = "accept"    // agent: take the customer an invite offered
	TypeDecline   = "decline"   // agent: do not take the customer an invite offered
	TypeMonitor   = "monitor"   // supervisor: listen in on a call of the organization (room)
	// TypeRecording, from an agent: pause or resume the call's recording
	// (State). From the server, to both sides: the recording's state changed.
	TypeRecording = "recording"
)

// Message types sent by the server.
const (
	TypeWelcome    = "welcome"     // reply to join
	TypeQueued     = "queued"      // customer: place in the queue, sent whenever it changes
	TypeAgentState = "agent_state" // agent: its state changed
	TypeAssigned   = "assigned"    // a call started: the peer and the ICE servers
	TypeEnded      = "ended"       // the call ended
	TypeError      = "error"       // something went wrong; see Code
	TypeBye        = "bye"         // the server is closing this connection
	TypeLayers     = "layers"      // publisher: which simulcast encodings of a track to send
	TypeSpeaker    = "speaker"     // in a call: who is speaking now (Role; empty: nobody)
	TypeInvite     = "invite"      // agent: a customer is offered; accept or decline before Timeout
	TypeWithdrawn  = "withdrawn"   // agent: an invite is no longer valid (Reason)
	TypeQueueStats = "queue_stats" // agent, supervisor: a summary of a queue, sent whenever it changes
)

// Peer connection names. Each participant has two: "pub" carries what it
// sends (the client offers), "sub" carries what it receives (the server
// offers). Two connections mean neither side ever has to resolve glare.
const (
	PCPub = "pub"
	PCSub = "sub"
)

// Roles a token can carry.
const (
	RoleCustomer   = "customer"
	RoleAgent      = "agent"
	RoleSupervisor = "supervisor" // watches the organization's queues; takes no calls
)

// Video qualities a client may ask for with a quality message: the
// simulcast layers, from lowest to highest.
const (
	QualityLow    = "low"
	QualityMedium = "medium"
	QualityHigh   = "high"
)

// MaxVideoSize bounds width and height in a quality message.
const MaxVideoSize = 8192

// Agent states.
const (
	AgentAvailable = "available"
	AgentAway      = "away"
	AgentBusy      = "busy"
)

// Recording states in recording messages from the server. An agent sends
// RecordingPaused or RecordingResumed to ask for them.
const (
	RecordingStarted = "started" // the call is being recorded: show the indicator
	RecordingPaused  = "paused"  // the agent paused it: nothing is written until resumed
	RecordingResumed = "resumed" // written again
	RecordingStopped = "stopped" // recording ended before the call (Reason); hide the indicator
)

// Reasons in a recording message with state stopped.
const (
	ReasonStorage = "storage" // storage could not keep up
)

// Reasons in ended and bye messages.
const (
	ReasonHangup   = "hangup"    // this side hung up
	ReasonPeerLeft = "peer_left" // the other side hung up or went away
	ReasonShutdown = "shutdown"  // the server is shutting down
	ReasonFailed   = "failed"    // media could not be set up
	ReasonTimeout  = "timeout"   // withdrawn: the agent did not answer the invite in time
	ReasonDeclined = "declined"  // withdrawn: the agent declined
	ReasonResumed  = "resumed"   // bye: the session was resumed on another connection
	ReasonReplaced = "replaced"  // bye: the same user (token subject) joined on another connection
)

// Limits on client input.
const (
	MaxChatRunes = 4000     // longest chat message, in characters
	MaxSDPBytes  = 64 << 10 // largest SDP
	MaxTokenLen  = 8 << 10  // longest token
	MaxIDLen     = 64       // longest request id
	MaxCandLen   = 1024     // longest ICE candidate line
	MaxMidLen    = 32       // longest sdpMid
)

// Message is every version-1 message. Which fields are set depends on Type;
// the comment on each field names the types that use it. Unused fields are
// omitted when encoding and must be absent or empty when decoding.
type Message struct {
	V    int    `json:"v"`
	Type string `json:"type"`
	// ID is an optional client-chosen request id; errors caused by that
	// message carry it in Ref.
	ID string `json:"id,omitempty"`

	Token     string        `json:"token,omitempty"`     // join; resume: the resume token
	PC        string        `json:"pc,omitempty"`        // offer, answer, candidate
	SDP       string        `json:"sdp,omitempty"`       // offer, answer
	Candidate *ICECandidate `json:"candidate,omitempty"` // candidate (null = end of candidates)
	Text      string        `json:"text,omitempty"`      // chat
	From      *Peer         `json:"from,omitempty"`      // chat (server→client)
	TS        int64         `json:"ts,omitempty"`        // chat (server→client): unix milliseconds
	Quality   string        `json:"quality,omitempty"`   // quality: low, medium or high
	Width     int           `json:"width,omitempty"`     // quality: the size the client renders remote video at
	Height    int           `json:"height,omitempty"`    // quality: (with width)

	Session    string      `json:"session,omitempty"`    // welcome
	Resume     string      `json:"resume,omitempty"`     // welcome (customers): the token to resume with after a lost connection
	Role       string      `json:"role,omitempty"`       // welcome; speaker: the speaking side's role, absent for nobody
	Org        string      `json:"org,omitempty"`        // welcome
	Queue      string      `json:"queue,omitempty"`      // welcome, queued
	Limits     *Limits     `json:"limits,omitempty"`     // welcome
	Position   int         `json:"position,omitempty"`   // queued: 1 = next
	Length     int         `json:"length,omitempty"`     // queued: customers waiting
	Wait       int         `json:"wait,omitempty"`       // queued: estimated seconds still to wait; absent when unknown
	Timeout    int         `json:"timeout,omitempty"`    // invite: seconds the agent has to answer
	Stats      *QueueStats `json:"stats,omitempty"`      // queue_stats
	State      string      `json:"state,omitempty"`      // agent_state; recording
	Room       string      `json:"room,omitempty"`       // the call a message is about (server: every call message; client: accept, decline, and optionally offer, answer, candidate, chat, quality, hangup)
	Peer       *Peer       `json:"peer,omitempty"`       // assigned
	ICEServers []ICEServer `json:"iceServers,omitempty"` // assigned
	Reason     string      `json:"reason,omitempty"`     // ended, bye, recording (stopped)
	Track      string      `json:"track,omitempty"`      // layers: the publisher's track id
	Active     []string    `json:"active,omitempty"`     // layers: RIDs to send
	Paused     []string    `json:"paused,omitempty"`     // layers: RIDs to pause

	Code    string `json:"code,omitempty"`    // error
	Message string `json:"message,omitempty"` // error: human-readable
	Ref     string `json:"ref,omitempty"`     // error: ID of the message that caused it
}

// ICECandidate mirrors the browser's RTCIceCandidateInit.
type ICECandidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// ICEServer mirrors the browser's RTCIceServer.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Peer describes the other side of a call (or a chat author) as the token
// named it. It carries only what the organization put in the token.
type Peer struct {
	Role string `json:"role"`
	Name string `json:"name,omitempty"`
}

// QueueStats summarizes a queue for agents. Durations are whole seconds;
// averages are over the last WindowSeconds.
type QueueStats struct {
	Waiting       int `json:"waiting"`       // customers waiting
	LongestWait   int `json:"longestWait"`   // how long the first-come of them has waited
	Available     int `json:"available"`     // agents serving the queue with a free slot
	Busy          int `json:"busy"`          // agents serving the queue with no free slot, or away mid-call
	Away          int `json:"away"`          // agents serving the queue who are away and idle
	Answered      int `json:"answered"`      // customers answered in the window
	AvgWait       int `json:"avgWait"`       // their average wait
	AvgHandle     int `json:"avgHandle"`     // average length of calls that ended in the window
	WindowSeconds int `json:"windowSeconds"` // the window
}

// Limits tells a client what the server enforces on its connection.
type Limits struct {
	MaxMessageBytes int     `json:"maxMessageBytes"`
	MessagesPerSec  float64 `json:"messagesPerSecond"`
	Burst           int     `json:"burst"`
}
