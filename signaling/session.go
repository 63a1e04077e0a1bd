package signaling

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
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
	limiter *rate.Limiter

	ctx    context.Context
	cancel context.CancelFunc
	out    chan outbound

	closeOnce sync.Once
	joinTimer *time.Timer
	rejected  int // messages refused (size, rate, decode); read loop only

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
		data, err := io.ReadAll(io.LimitReader(r, int64(lim.MaxMessageBytes)+1))
		if err != nil {
			return
		}
		if len(data) > lim.MaxMessageBytes {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
			s.reject(protocol.Errorf(protocol.CodeMessageTooLarge, "message larger than %d bytes", lim.MaxMessageBytes), "")
			continue
		}
		if !s.limiter.Allow() {
			s.reject(protocol.Errorf(protocol.CodeRateLimited, "more than %g messages per second; slow down", lim.MessagesPerSec), "")
			continue
		}
		if typ != websocket.MessageText {
			s.reject(protocol.Errorf(protocol.CodeBadMessage, "binary messages are not supported"), "")
			continue
		}
		msg, err := protocol.Decode(data)
		s.srv.metrics.message("in", msg.Type)
		if err != nil {
			if !s.joined {
				// A client that cannot even join correctly gets one answer.
				s.fail(err, msg.ID)
				return
			}
			s.reject(err, msg.ID)
			continue
		}
		s.handle(msg)
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
// written. Safe to call more than once and from any goroutine.
func (s *session) closeWith(code websocket.StatusCode, reason string) {
	s.closeOnce.Do(func() {
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

// handle acts on one valid message.
func (s *session) handle(m protocol.Message) {
	if !s.joined {
		switch m.Type {
		case protocol.TypeJoin:
			s.join(m)
		case protocol.TypeResume:
			s.resume(m)
		default:
			s.fail(protocol.Errorf(protocol.CodeInvalidState, "send join first"), m.ID)
		}
		return
	}
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
	if err != nil {
		s.sendError(err, m.ID)
	}
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
