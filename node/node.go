// Package node wires one HelpCaster node together: the SFU, the queue
// store, signaling, the demo pages, health checks and metrics behind one
// HTTP server. cmd/helpcaster builds a Config from flags and runs it; tests
// run the same node in-process.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/helpcaster/helpcaster/recorder/callrec"
	"github.com/helpcaster/helpcaster/sfu"
	"github.com/helpcaster/helpcaster/signaling"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/queue"
	"github.com/helpcaster/helpcaster/web"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config is everything a node needs.
type Config struct {
	Listen          string       // HTTP address, e.g. 127.0.0.1:8080
	Listener        net.Listener // if set, serve on it instead of listening on Listen
	TLSCert, TLSKey string       // both set: serve HTTPS/WSS
	Orgs            *auth.Directory
	DevOrg          *auth.Org // non-nil: serve demo tokens for this organization
	DevTokenTTL     time.Duration
	Media           sfu.Config
	Limits          signaling.Limits
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// RedisURL, when set, keeps queues and agent presence in that Redis
	// instead of in memory; nodes sharing it form a cluster.
	RedisURL string
	// TURN, when set, gives participants TURN credentials (and may run the
	// embedded TURN server).
	TURN *TURNConfig
	// ResumeGrace is how long a disconnected customer keeps its place
	// (0: signaling.DefaultResumeGrace).
	ResumeGrace time.Duration
	// NodeID names this node in the cluster registry (with RedisURL);
	// "" picks a random id.
	NodeID string
	// Pprof serves Go's profiler under /debug/pprof/ on the HTTP listener.
	// Profiles show code paths and sizes, not user data, but they cost CPU
	// while taken: turn it on only where the listener is not public.
	Pprof bool
	// TokenMaxLifetime is the longest lifetime of a token accepted on join
	// (auth.Verifier.MaxLifetime); 0 means auth.DefaultMaxLifetime. Demo
	// tokens live no longer.
	TokenMaxLifetime time.Duration
	// Recordings, when set, records the calls whose queue records them
	// (recordings.go); nil: no call is recorded.
	Recordings *RecordingsConfig
}

// Node is a running HelpCaster node.
type Node struct {
	cfg      Config
	log      *slog.Logger
	reg      *prometheus.Registry
	media    *sfu.SFU
	signal   *signaling.Server
	http     *http.Server
	tls      bool // serving HTTPS; not read from http.TLSConfig, which Serve itself fills in
	listener net.Listener
	// closeStore releases the queue store (its Redis connections) once
	// signaling has shut down.
	closeStore func()
	member     *membership // nil without Redis
	recordings *recordings // nil without Config.Recordings
	store      *storeCheck // what /readyz knows of the queue store
}

// New opens the node's sockets (HTTP and media) and builds its parts. It
// does not serve until Run.
func New(cfg Config) (*Node, error) {
	if cfg.Orgs == nil {
		return nil, errors.New("node: no organizations")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.DevTokenTTL <= 0 {
		cfg.DevTokenTTL = time.Hour
	}
	if cfg.TokenMaxLifetime > 0 {
		cfg.DevTokenTTL = min(cfg.DevTokenTTL, cfg.TokenMaxLifetime)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	media := cfg.Media
	media.Logger = log.With("component", "sfu")
	media.Registerer = reg
	s, err := sfu.New(media)
	if err != nil {
		return nil, err
	}
	store, closeStore, err := openStore(cfg.RedisURL, log)
	if err != nil {
		s.Close()
		return nil, err
	}
	n := &Node{cfg: cfg, log: log, reg: reg, media: s, store: newStoreCheck(store)}
	var iceServers signaling.ICEServerSource
	if cfg.TURN != nil {
		source, stopTURN, err := startTURN(cfg.TURN, cfg.TLSCert, cfg.TLSKey, s, cfg.Media.PublicIPs, log, reg)
		if err != nil {
			closeStore()
			s.Close()
			return nil, err
		}
		iceServers = source
		prev := closeStore
		closeStore = func() { prev(); stopTURN() }
	}
	var link signaling.Cluster
	if cfg.RedisURL != "" {
		if n.member, err = newMembership(cfg.RedisURL, cfg.NodeID, n.URL, s, log); err != nil {
			closeStore()
			s.Close()
			return nil, fmt.Errorf("cluster registry: %w", err)
		}
		link = n.member
		prev := closeStore
		closeStore = func() { prev(); n.member.close() }
	}
	var recorder *callrec.Recorder
	if cfg.Recordings != nil && (anyQueueRecords(cfg.Orgs) || cfg.Recordings.leftovers()) {
		if n.recordings, err = openRecordings(cfg.Recordings, cfg.NodeID, log.With("component", "recorder"), reg); err != nil {
			closeStore()
			s.Close()
			return nil, err
		}
		recorder = n.recordings.rec
		prev := closeStore
		closeStore = func() { prev(); _ = n.recordings.closeStore() }
	}
	sig, err := signaling.NewServer(signaling.Config{
		Recorder:    recorder,
		Verifier:    &auth.Verifier{Dir: cfg.Orgs, MaxLifetime: cfg.TokenMaxLifetime},
		Store:       store,
		SFU:         s,
		Limits:      cfg.Limits,
		Logger:      log.With("component", "signaling"),
		Registerer:  reg,
		Cluster:     link,
		ICEServers:  iceServers,
		ResumeGrace: cfg.ResumeGrace,
	})
	if err != nil {
		closeStore()
		s.Close()
		return nil, err
	}
	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			_ = sig.Shutdown(context.Background()) // no sessions yet: returns at once
			closeStore()
			s.Close()
			return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
		}
	}
	n.signal, n.listener, n.closeStore = sig, ln, closeStore
	n.http = &http.Server{
		Handler:           n.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			ln.Close()
			_ = sig.Shutdown(context.Background()) // no sessions yet: returns at once
			closeStore()
			s.Close()
			return nil, fmt.Errorf("load TLS certificate: %w", err)
		}
		n.http.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		n.tls = true
	}
	return n, nil
}

func (n *Node) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/signal", n.signal)
	mux.Handle("GET /demo/", http.StripPrefix("/demo", web.Handler()))
	if n.cfg.DevOrg != nil {
		mux.Handle("GET /demo/token", signaling.DevTokenHandler(n.cfg.DevOrg, n.cfg.DevTokenTTL))
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/demo/", http.StatusFound)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if reason := n.notReady(); reason != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, reason)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	if n.cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		mux.Handle("GET /debug/pprof/allocs", pprof.Handler("allocs"))
	}
	return mux
}

// notReady says why the node should get no new clients ("" when it is
// ready): it drains or shuts down, or it cannot reach its queue store, so
// that nobody joining it could be placed. Liveness (/healthz) does not
// depend on any of this.
func (n *Node) notReady() string {
	if !n.signal.Ready() {
		if n.signal.Draining() {
			return "draining"
		}
		return "shutting down"
	}
	if err := n.store.check(); err != nil {
		return "queue store unreachable"
	}
	return ""
}

// Readiness probes of the queue store: at most one ping per
// storeCheckEvery, however often /readyz is asked, each bounded by
// storeCheckTimeout.
const (
	storeCheckEvery   = time.Second
	storeCheckTimeout = time.Second
)

// storeCheck remembers whether the queue store answered its last ping.
type storeCheck struct {
	ping func(context.Context) error // nil: the store is in memory, always there

	mu  sync.Mutex // held through a ping, so that concurrent probes share it
	at  time.Time  // when the last ping returned; guarded by mu
	err error      // its result; guarded by mu
}

// newStoreCheck checks store when it can be pinged (Redis), else never.
func newStoreCheck(store queue.Store) *storeCheck {
	c := &storeCheck{}
	if p, ok := store.(interface{ Ping(context.Context) error }); ok {
		c.ping = p.Ping
	}
	return c
}

// check returns the result of a ping no older than storeCheckEvery.
func (c *storeCheck) check() error {
	if c.ping == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < storeCheckEvery {
		return c.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeCheckTimeout)
	defer cancel()
	c.err = c.ping(ctx)
	c.at = time.Now()
	return c.err
}

// URL is the base URL the node serves on (http or https).
func (n *Node) URL() string {
	scheme := "http"
	if n.tls {
		scheme = "https"
	}
	return scheme + "://" + n.listener.Addr().String()
}

// MediaAddr is the address of the media UDP socket.
func (n *Node) MediaAddr() *net.UDPAddr { return n.media.Addr() }

// Run serves until ctx ends, then shuts down: it stops accepting, ends the
// calls in progress, tells connected clients, closes rooms, and returns
// within the configured shutdown timeout. To let calls finish first, call
// Drain while Run serves, and end ctx once Drain has returned.
func (n *Node) Run(ctx context.Context) error {
	memberCtx, stopMember := context.WithCancel(context.Background())
	memberDone := make(chan struct{})
	go func() {
		defer close(memberDone)
		if n.member != nil {
			if err := n.member.run(memberCtx); err != nil {
				n.log.Warn("cluster registry", "err", err)
			}
		}
	}()
	// The node leaves the registry first when it stops, so no room is
	// placed on it while it drains.
	defer func() { stopMember(); <-memberDone }()
	// What an earlier run left unrecorded is finished beside this run's
	// recording, retried while storage is down.
	recoverCtx, stopRecover := context.WithCancel(context.Background())
	recoverDone := make(chan struct{})
	go func() {
		defer close(recoverDone)
		if n.recordings != nil {
			n.recordings.rec.RecoverLoop(recoverCtx)
		}
	}()
	defer func() { stopRecover(); <-recoverDone }()
	errc := make(chan error, 1)
	go func() {
		var err error
		if n.tls {
			err = n.http.ServeTLS(n.listener, "", "")
		} else {
			err = n.http.Serve(n.listener)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		n.media.Close()
		n.closeStore()
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	stopMember()
	<-memberDone
	n.log.Info("shutting down", "timeout", n.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	// Shutdown of the HTTP server does not wait for hijacked WebSockets;
	// signaling drains those itself.
	if err := n.http.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := n.signal.Shutdown(sctx); err != nil {
		errs = append(errs, err)
	}
	if err := n.media.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close media: %w", err))
	}
	stopRecover()
	<-recoverDone
	if n.recordings != nil {
		// The calls have ended: their recordings are stored, or left in
		// the spool for the next start.
		// Within the shutdown's deadline: what is left then waits for the
		// next start.
		if err := n.recordings.close(sctx); err != nil {
			n.log.Warn("recordings not all stored before shutdown", "err", err)
		}
	}
	n.closeStore()
	if err := <-errc; err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Drain makes the node drain while Run goes on serving: /readyz answers 503
// and new connections are refused, no call starts here and no new room is
// placed here (with a cluster, the node stays in the registry marked
// draining, so the other nodes neither place rooms on it nor take it for
// dead), connections without a call are told bye, and the calls in
// progress go on. It returns nil once no call and no connection is left,
// or ctx's error when ctx ends first; either way the caller then ends Run's
// context, which ends whatever is left (see signaling.Server.Drain).
func (n *Node) Drain(ctx context.Context) error {
	if n.member != nil {
		n.member.drain(ctx)
	}
	return n.signal.Drain(ctx)
}

// openStore returns the queue store: Redis at redisURL, or memory when it
// is empty, and a function that releases it. A Redis that does not answer
// yet is not an error: joins get "unavailable" until it does.
func openStore(redisURL string, log *slog.Logger) (queue.Store, func(), error) {
	if redisURL == "" {
		return queue.NewMemory(nil), func() {}, nil
	}
	r, err := queue.DialRedis(redisURL)
	if err != nil {
		return nil, nil, err // the error names no password: ParseURL's do not echo the URL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := r.Ping(ctx); err != nil {
		log.Warn("queue store: redis does not answer yet; joins get \"unavailable\" until it does", "err", err)
	} else {
		log.Info("queue store: redis")
	}
	return r, func() { _ = r.Close() }, nil
}
