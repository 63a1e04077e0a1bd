package signaling

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/pion/ice/v4"
	"golang.org/x/time/rate"
)

// session is one client WebSocket connection. Its read loop runs on the
// HTTP handler's goroutine; a writer goroutine owns all writes, and a pinger
// notices dead peers.
type session struct {
	srv     *Server
	id      string // random, carries nothing about the user
	conn    *websocket.Conn
	origin  string
	ua      string
	log     *slog.Logger
	limiter *rate.Limiter // the flood guard: every message but negotiation's
	sdp     *rate.Limiter // offers and answers

	ctx    context.Context
	cancel context.CancelFunc
	out    chan outbound

	closeOnce sync.Once
	// closing is set once a close frame is queued: from then on the read
	// loop drops what arrives, and keeps reading only so that the close
	// handshake completes after the queued messages are written.
	closing   atomic.Bool
	joinTimer *time.Timer
	rejected  int // messages refused (size, rate, decode, negotiation); read loop only
	// cands counts the candidates taken per call and connection since the
	// client's last offer (pub) or answer (sub) there; read loop only.
	cands map[candKey]int

	// Set once by join on the read loop, read-only afterwards.
	joined bool
	role   string
	org    *auth.Org
	claims *auth.Claims
	queue  string
}

// outbound is one message to write, or (close != nil) the close frame.
type outbound struct {
	data  []byte
	close *closeFrame
}

type closeFrame struct {
	code   websocket.StatusCode
	reason string
}

func newSession(s *Server, conn *websocket.Conn, origin, ua string) *session {
	ctx, cancel := context.WithCancel(s.ctx)
	id := randomID(16)
	return &session{
		srv:     s,
		id:      id,
		conn:    conn,
		origin:  origin,
		ua:      ua,
		log:     s.log.With("session", id[:8]),
		limiter: rate.NewLimiter(rate.Limit(s.limits.MessagesPerSec), s.limits.Burst),
		sdp:     rate.NewLimiter(rate.Limit(s.limits.SDPPerSec), s.limits.SDPBurst),
		cands:   make(map[candKey]int),
		ctx:     ctx,
		cancel:  cancel,
		out:     make(chan outbound, s.limits.SendQueue),
	}
}

// run serves the connection until it ends, then cleans up.
func (s *session) run() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.writeLoop() }()
	go func() { defer wg.Done(); s.pingLoop() }()

	s.joinTimer = time.AfterFunc(s.srv.limits.JoinTimeout, func() {
		s.closeWith(websocket.StatusPolicyViolation, "no join within the time allowed")
	})
	// The read loop returns only once the connection has ended (the
	// client's close frame, an error, or a cut-off): after a deliberate
	// close it keeps reading while the writer delivers what was queued and
	// the close frame, so tearing down here loses nothing.
	s.readLoop()
	s.joinTimer.Stop()
	s.cancel()
	wg.Wait()
	s.conn.CloseNow()
	if s.joined {
		s.srv.hub.disconnected(s)
	}
}

func (s *session) readLoop() {
	lim := s.srv.limits
	for {
		typ, r, err := s.conn.Reader(s.ctx)
		if err != nil {
			return // closed, dead, or over the hard size limit (closed with 1009)
		}
		if s.closing.Load() {
			// Our close frame is on its way: what the client still sends
			// is dropped, and reading on lets its close frame end the loop.
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
			continue
		}
		data, err := io.ReadAll(io.LimitReader(r, int64(lim.MaxMessageBytes)+1))
		if err != nil {
			return
		}
		if len(data) > lim.MaxMessageBytes {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
			s.refuse(refusedTooLarge, protocol.Errorf(protocol.CodeMessageTooLarge, "message larger than %d bytes", lim.MaxMessageBytes), "")
			continue
		}
		if typ != websocket.MessageText {
			s.refuse(refusedBinary, protocol.Errorf(protocol.CodeBadMessage, "binary messages are not supported; send JSON text"), "")
			continue
		}
		msg, err := protocol.Decode(data)
		s.srv.metrics.message("in", msg.Type)
		if err != nil {
			s.refuse(refusedMalformed, err, msg.ID)
			continue
		}
		if !s.joined {
			s.handleFirst(msg)
			continue
		}
		if reason, err := s.admit(msg); err != nil {
			s.refuse(reason, err, msg.ID)
			continue
		}
		err = s.handle(msg)
		if err == nil {
			s.taken(msg)
			continue
		}
		if negotiation(msg.Type) {
			// Negotiation skips the flood guard: what it gets wrong counts
			// towards MaxRejected instead.
			s.reject(err, msg.ID)
			continue
		}
		s.sendError(err, msg.ID)
	}
}

// Reasons a message was refused before it was handled: the values of the
// refused counter's reason label.
const (
	refusedTooLarge   = "too_large"  // over MaxMessageBytes
	refusedBinary     = "binary"     // a binary frame
	refusedMalformed  = "malformed"  // did not decode (JSON, version, type, fields)
	refusedRate       = "rate"       // over the flood guard (MessagesPerSec, Burst)
	refusedSDPRate    = "sdp_rate"   // offers and answers over SDPPerSec, SDPBurst
	refusedCandidates = "candidates" // over MaxCandidates in one negotiation, or unparsable
)

// refusalReasons are all the reasons, so that every series exists from
// start-up.
var refusalReasons = []string{refusedTooLarge, refusedBinary, refusedMalformed, refusedRate, refusedSDPRate, refusedCandidates}

// refuse answers a message refused before it was handled. Before join it
// ends the connection: a client that cannot join correctly gets one answer
// and a close frame 1008 saying why. After join the connection goes on until
// MaxRejected. Every refusal is counted, and logged at a bounded rate.
func (s *session) refuse(reason string, err error, ref string) {
	s.srv.refused.WithLabelValues(reason).Inc()
	if s.srv.refusalLog.Allow() {
		s.log.Info("message refused", "reason", reason, "code", string(protocol.AsError(err).Code), "joined", s.joined)
	}
	if !s.joined {
		s.fail(err, ref)
		return
	}
	s.reject(err, ref)
}

// negotiation reports whether messages of type typ are what setting up and
// ending media needs. They are never refused by the flood guard: a browser
// trickles its candidates for two connections in one burst.
func negotiation(typ string) bool {
	switch typ {
	case protocol.TypeOffer, protocol.TypeAnswer, protocol.TypeCandidate, protocol.TypeHangup:
		return true
	}
	return false
}

// candKey names one connection of one call ("" when the client did not name
// the call) for the candidate cap.
type candKey struct{ room, pc string }

// maxCandKeys bounds s.cands: past it the counts start again from zero.
const maxCandKeys = 16

// admit applies the limits on a joined client's message rate: the flood
// guard for everything but negotiation, which has its own rules (offers and
// answers their own rate; candidates a number per negotiation, and a syntax
// check). It returns the refusal reason and error, or nil.
func (s *session) admit(m protocol.Message) (string, error) {
	lim := s.srv.limits
	switch m.Type {
	case protocol.TypeOffer, protocol.TypeAnswer:
		if !s.sdp.Allow() {
			return refusedSDPRate, protocol.Errorf(protocol.CodeRateLimited, "more than %d offers and answers at once (%g a second); slow down", lim.SDPBurst, lim.SDPPerSec)
		}
	case protocol.TypeCandidate:
		c := m.Candidate
		if c == nil || c.Candidate == "" {
			return "", nil // the end of candidates
		}
		if _, err := ice.UnmarshalCandidate(strings.TrimPrefix(c.Candidate, "candidate:")); err != nil {
			return refusedCandidates, &protocol.Error{Code: protocol.CodeBadSDP, Message: "the candidate could not be parsed", Cause: err}
		}
		if s.cands[candKey{m.Room, m.PC}] >= lim.MaxCandidates {
			return refusedCandidates, protocol.Errorf(protocol.CodeInvalidState, "more than %d candidates for the %s connection in one negotiation", lim.MaxCandidates, m.PC)
		}
	case protocol.TypeHangup:
	default:
		if !s.limiter.Allow() {
			return refusedRate, protocol.Errorf(protocol.CodeRateLimited, "more than %g messages per second; slow down", lim.MessagesPerSec)
		}
	}
	return "", nil
}

// taken records a negotiation message the call took: a candidate counts
// against the cap; an offer (pub) or answer (sub) starts a negotiation
// whose candidates count afresh.
func (s *session) taken(m protocol.Message) {
	switch m.Type {
	case protocol.TypeCandidate:
		if m.Candidate == nil || m.Candidate.Candidate == "" {
			return
		}
		k := candKey{m.Room, m.PC}
		if _, ok := s.cands[k]; !ok && len(s.cands) >= maxCandKeys {
			clear(s.cands)
		}
		s.cands[k]++
	case protocol.TypeOffer, protocol.TypeAnswer:
		delete(s.cands, candKey{m.Room, m.PC})
	}
}

// reject answers a refused message and closes the connection once a client
// has had too many refused.
func (s *session) reject(err error, ref string) {
	s.sendError(err, ref)
	s.rejected++
	if s.rejected > s.srv.limits.MaxRejected {
		s.closeWith(websocket.StatusPolicyViolation, "too many rejected messages")
	}
}

// fail sends the error and closes the connection as a policy violation.
func (s *session) fail(err error, ref string) {
	s.sendError(err, ref)
	s.closeWith(websocket.StatusPolicyViolation, string(protocol.AsError(err).Code))
}

func (s *session) sendError(err error, ref string) {
	m := protocol.ErrorMessage(err, ref)
	if m.Code == string(protocol.CodeInternal) {
		s.log.Error("request failed", "err", err)
	} else if pe := protocol.AsError(err); pe.Cause != nil {
		// The client gets a fixed sentence; the detail is for us.
		s.log.Debug("request refused", "code", m.Code, "err", pe.Cause)
	}
	s.srv.metrics.errors.WithLabelValues(m.Code).Inc()
	s.send(m)
}

// send queues a message for the writer. It never blocks: a client too slow
// to take its messages is disconnected.
func (s *session) send(m protocol.Message) {
	data, err := protocol.Encode(m)
	if err != nil {
		s.log.Error("encode", "type", m.Type, "err", err)
		return
	}
	if s.ctx.Err() != nil {
		return
	}
	select {
	case s.out <- outbound{data: data}:
		s.srv.metrics.message("out", m.Type)
	default:
		s.log.Warn("client too slow; disconnecting")
		s.cancel()
	}
}

// closeWith closes the connection with code after the queued messages are
// written. Safe to call more than once and from any goroutine. The goodbye
// is bounded: a client that has not taken the messages and the close frame
// within WriteTimeout is cut off.
func (s *session) closeWith(code websocket.StatusCode, reason string) {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		cut := time.AfterFunc(s.srv.limits.WriteTimeout, s.cancel)
		context.AfterFunc(s.ctx, func() { cut.Stop() })
		select {
		case s.out <- outbound{close: &closeFrame{code: code, reason: reason}}:
		default:
			s.cancel()
		}
	})
}

func (s *session) writeLoop() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case m := <-s.out:
			if m.close != nil {
				// Close writes the frame and waits (bounded) for the peer's.
				_ = s.conn.Close(m.close.code, m.close.reason)
				s.cancel()
				return
			}
			ctx, cancel := context.WithTimeout(s.ctx, s.srv.limits.WriteTimeout)
			err := s.conn.Write(ctx, websocket.MessageText, m.data)
			cancel()
			if err != nil {
				s.cancel()
				return
			}
		}
	}
}

func (s *session) pingLoop() {
	t := time.NewTicker(s.srv.limits.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(s.ctx, s.srv.limits.PingInterval)
			err := s.conn.Ping(ctx)
			cancel()
			if err != nil {
				s.cancel()
				return
			}
		}
	}
}

// handleFirst acts on the first valid message: join, resume, or a refusal.
func (s *session) handleFirst(m protocol.Message) {
	switch m.Type {
	case protocol.TypeJoin:
		s.join(m)
	case protocol.TypeResume:
		s.resume(m)
	default:
		s.fail(protocol.Errorf(protocol.CodeInvalidState, "send join first"), m.ID)
	}
}

// handle acts on one valid message of a joined client and returns the
// error to answer it with.
func (s *session) handle(m protocol.Message) error {
	var err error
	switch m.Type {
	case protocol.TypeJoin, protocol.TypeResume:
		err = protocol.Errorf(protocol.CodeInvalidState, "already joined")
	case protocol.TypeAvailable, protocol.TypeAway:
		if s.role != protocol.RoleAgent {
			err = protocol.Errorf(protocol.CodeInvalidState, "only agents set availability")
			break
		}
		if m.Type == protocol.TypeAvailable && s.srv.Draining() {
			err = errDraining
			break
		}
		err = s.srv.hub.setAvailable(s, m.Type == protocol.TypeAvailable)
	case protocol.TypeOffer, protocol.TypeAnswer, protocol.TypeCandidate, protocol.TypeChat, protocol.TypeQuality:
		err = s.srv.hub.fromClient(s, m)
	case protocol.TypeRecording:
		if s.role != protocol.RoleAgent {
			err = protocol.Errorf(protocol.CodeForbidden, "only the agent pauses or resumes the recording")
			break
		}
		err = s.srv.hub.fromClient(s, m)
	case protocol.TypeHangup:
		err = s.srv.hub.hangup(s, m.Room)
	case protocol.TypeMonitor:
		err = s.srv.hub.monitor(s, m.Room)
	case protocol.TypeAccept, protocol.TypeDecline:
		switch {
		case s.role != protocol.RoleAgent:
			err = protocol.Errorf(protocol.CodeInvalidState, "only agents answer invites")
		case m.Type == protocol.TypeAccept:
			err = s.srv.hub.accept(s, m.Room)
		default:
			err = s.srv.hub.decline(s, m.Room)
		}
	}
	return err
}

// join authenticates the session and enters it into its queue (customer) or
// the agent pool (agent, initially away).
func (s *session) join(m protocol.Message) {
	claims, org, err := s.srv.verifier.Verify(m.Token)
	if err != nil {
		s.srv.metrics.authFailures.WithLabelValues(string(protocol.AsError(err).Code)).Inc()
		s.fail(err, m.ID)
		return
	}
	if !org.AllowsOrigin(s.origin) {
		err := protocol.Errorf(protocol.CodeForbiddenOrigin, "this page's origin is not allowed for organization %q", org.ID)
		s.srv.metrics.authFailures.WithLabelValues(string(protocol.CodeForbiddenOrigin)).Inc()
		s.fail(err, m.ID)
		return
	}
	s.joinTimer.Stop()
	q, _ := org.Queue(claims.Queue) // Verify checked the queue exists
	s.joined, s.role, s.org, s.claims, s.queue = true, claims.Role, org, claims, q.Name
	s.log = s.log.With("org", org.ID, "role", claims.Role)

	welcome := protocol.Message{
		Type:    protocol.TypeWelcome,
		Session: s.id,
		Role:    s.role,
		Org:     org.ID,
		Queue:   q.Name,
		Limits: &protocol.Limits{
			MaxMessageBytes: s.srv.limits.MaxMessageBytes,
			MessagesPerSec:  s.srv.limits.MessagesPerSec,
			Burst:           s.srv.limits.Burst,
		},
	}
	if err := s.srv.hub.joined(s, q.MaxLength, welcome); err != nil {
		pe := protocol.AsError(err)
		s.sendError(err, m.ID)
		code := websocket.StatusPolicyViolation
		switch pe.Code {
		case protocol.CodeQueueFull:
			code = websocket.StatusNormalClosure
		case protocol.CodeUnavailable:
			code = websocket.StatusTryAgainLater
		}
		s.closeWith(code, string(pe.Code))
	}
}

var errNotInCall = protocol.Errorf(protocol.CodeInvalidState, "not in a call")
