// Package signaling is HelpCaster's WebSocket signaling: it authenticates
// customers and agents with their organization's tokens, places customers in
// queues, pairs them with agents, and relays offers, answers, candidates and
// chat between the clients and the SFU.
package signaling

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/helpcaster/helpcaster/recorder/callrec"
	"github.com/helpcaster/helpcaster/sfu"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Limits bound what one client connection may send and how long the server
// waits for it.
type Limits struct {
	MaxMessageBytes int           // larger messages get message_too_large and are dropped
	HardMaxBytes    int           // larger messages close the connection (1009)
	MessagesPerSec  float64       // sustained message rate (the flood guard; not offers, answers, candidates, hangup)
	Burst           int           // messages allowed at once above the rate
	SDPPerSec       float64       // sustained rate of offers and answers together
	SDPBurst        int           // offers and answers allowed at once above SDPPerSec
	MaxCandidates   int           // candidates per call and connection (pub, sub) in one negotiation
	MaxRejected     int           // rejected messages before the connection is closed (1008)
	PingInterval    time.Duration // WebSocket ping period; a missing pong within it closes the connection
	WriteTimeout    time.Duration // longest a single write may take
	JoinTimeout     time.Duration // time allowed between connecting and join
	SendQueue       int           // messages buffered per connection before it is judged too slow
}

// DefaultLimits are the limits used for zero fields of Limits.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes: 64 << 10,
		HardMaxBytes:    1 << 20,
		MessagesPerSec:  20,
		Burst:           40,
		SDPPerSec:       2,
		SDPBurst:        10,
		MaxCandidates:   64,
		MaxRejected:     100,
		PingInterval:    15 * time.Second,
		WriteTimeout:    10 * time.Second,
		JoinTimeout:     15 * time.Second,
		SendQueue:       256,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = d.MaxMessageBytes
	}
	if l.HardMaxBytes < l.MaxMessageBytes {
		l.HardMaxBytes = max(d.HardMaxBytes, l.MaxMessageBytes)
	}
	if l.MessagesPerSec <= 0 {
		l.MessagesPerSec = d.MessagesPerSec
	}
	if l.Burst <= 0 {
		l.Burst = d.Burst
	}
	if l.SDPPerSec <= 0 {
		l.SDPPerSec = d.SDPPerSec
	}
	if l.SDPBurst <= 0 {
		l.SDPBurst = d.SDPBurst
	}
	if l.MaxCandidates <= 0 {
		l.MaxCandidates = d.MaxCandidates
	}
	if l.MaxRejected <= 0 {
		l.MaxRejected = d.MaxRejected
	}
	if l.PingInterval <= 0 {
		l.PingInterval = d.PingInterval
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = d.WriteTimeout
	}
	if l.JoinTimeout <= 0 {
		l.JoinTimeout = d.JoinTimeout
	}
	if l.SendQueue <= 0 {
		l.SendQueue = d.SendQueue
	}
	return l
}

// ICEServerSource returns the ICE servers a participant of org should use.
// It is the one place ICE server lists (later with TURN credentials) come from.
type ICEServerSource func(org, participant string) []protocol.ICEServer

// Config wires a Server.
type Config struct {
	Verifier   *auth.Verifier
	Store      queue.Store
	SFU        *sfu.SFU
	ICEServers ICEServerSource // nil: none
	Limits     Limits
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Cluster links this node to the others sharing Store (nil: this node
	// is alone).
	Cluster Cluster
	// ResumeGrace is how long a disconnected customer keeps its place
	// (0: DefaultResumeGrace).
	ResumeGrace time.Duration
	// Recorder records the calls hosted here whose queue records them
	// (nil: no call is recorded).
	Recorder *callrec.Recorder
}

// Server accepts signaling connections on /v1/signal.
type Server struct {
	verifier   *auth.Verifier
	store      queue.Store
	sfu        *sfu.SFU
	recorder   *callrec.Recorder
	iceServers ICEServerSource
	limits     Limits
	log        *slog.Logger
	metrics    *metrics
	hub        *hub

	refused    *prometheus.CounterVec // reason: messages refused before they were handled (session.refuse)
	refusalLog *rate.Limiter          // bounds the log lines about refused messages, over all sessions

	resumeGrace time.Duration
	listenDone  chan struct{} // closed when the cluster listener has returned

	// ctx lives as long as the server; sessions derive from it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // session and call goroutines

	// The hub's reconcile loop (reconcile.go) runs until stopReconcile
	// closes, and closes reconcileDone when it has returned.
	stopReconcile, reconcileDone chan struct{}

	mu       sync.Mutex
	sessions map[*session]struct{}
	closing  bool

	drain drainer // drain.go
}

// NewServer builds a Server.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Verifier == nil || cfg.Store == nil || cfg.SFU == nil {
		return nil, errors.New("signaling: Verifier, Store and SFU are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	refused, err := newRefusals(cfg.Registerer, refusalReasons)
	if err != nil {
		return nil, err
	}
	ice := cfg.ICEServers
	if ice == nil {
		ice = func(string, string) []protocol.ICEServer { return nil }
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		verifier:   cfg.Verifier,
		store:      cfg.Store,
		sfu:        cfg.SFU,
		recorder:   cfg.Recorder,
		iceServers: ice,
		limits:     cfg.Limits.withDefaults(),
		log:        log,
		metrics:    m,
		refused:    refused,
		refusalLog: rate.NewLimiter(1, 10),
		ctx:        ctx,
		cancel:     cancel,
		sessions:   make(map[*session]struct{}),

		resumeGrace: cfg.ResumeGrace,
		listenDone:  make(chan struct{}),
	}
	if s.resumeGrace <= 0 {
		s.resumeGrace = DefaultResumeGrace
	}
	var p peers = alone{}
	if cfg.Cluster != nil {
		p = newOverBus(cfg.Cluster, log)
	}
	s.hub = newHub(s, p)
	go func() {
		defer close(s.listenDone)
		p.listen(s.ctx, s.hub.onRelay)
	}()
	s.stopReconcile, s.reconcileDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.reconcileDone)
		s.hub.loop(s.stopReconcile)
	}()
	return s, nil
}

// Ready reports whether the server accepts new connections and starts new
// calls: false once it drains or shuts down.
func (s *Server) Ready() bool {
	if s.drain.active() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closing
}

// ServeHTTP upgrades the request to a WebSocket and runs the session until
// the connection ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closing || s.drain.active() {
		s.mu.Unlock()
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	// The Origin is checked against the organization's allowed origins after
	// join, when the organization is known; see session.join.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept has written the HTTP error
	}
	conn.SetReadLimit(int64(s.limits.HardMaxBytes))
	sess := newSession(s, conn, r.Header.Get("Origin"), r.UserAgent())

	s.mu.Lock()
	// A drain that began before this step finds the session in s.sessions
	// once it is added; one that began before sees it refused here.
	if s.closing || s.drain.active() {
		s.mu.Unlock()
		conn.Close(websocket.StatusGoingAway, "server is shutting down")
		return
	}
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	s.metrics.connections.Inc()

	sess.run()

	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.metrics.connections.Dec()
}

// Shutdown stops accepting connections, tells every client (ended to those
// in a call, then bye), closes the rooms, and waits for the sessions to end
// or ctx to expire.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		close(s.stopReconcile)
	}
	s.closing = true
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()

	s.hub.endAll(protocol.ReasonShutdown)
	for _, sess := range sessions {
		sess.send(protocol.Message{Type: protocol.TypeBye, Reason: protocol.ReasonShutdown})
		sess.closeWith(websocket.StatusGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	<-s.reconcileDone
	select {
	case <-done:
		s.cancel()
		<-s.listenDone
		return nil
	case <-ctx.Done():
		s.cancel() // force the remaining connections closed
		<-done
		<-s.listenDone
		return fmt.Errorf("signaling shutdown: %w", ctx.Err())
	}
}

// goTracked runs f on a goroutine that Shutdown waits for. Once shutdown has
// begun it does nothing: Shutdown itself ends what f would.
func (s *Server) goTracked(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// randomID returns a random URL-safe id of n random bytes.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}
