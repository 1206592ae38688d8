// Package coordinator is tabgrid's server: the REST API (echo), the hub
// that keeps a WebSocket to every tab and dispatches tasks to them, the
// reaper and renewer loops, the event stream for dashboards, and the
// wiring of all of it to a store. It imports tasks, store and the store
// implementations, and webclient for the static pages; nothing imports it
// but cmd/tabgrid and tests.
package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/store/memstore"
	"github.com/tabgrid/tabgrid/store/redisstore"
)

// Server is one coordinator process: Start binds and serves, Close hands
// every in-flight task back and stops. End-to-end tests start it on
// 127.0.0.1:0.
type Server struct {
	cfg    Config
	log    *slog.Logger
	store  store.Store
	hub    *Hub
	reg    *prometheus.Registry
	echo   *echo.Echo
	events *broker
	tokens [][]byte

	ctx      context.Context // ends when Close starts: ends waits and streams
	cancel   context.CancelFunc
	hubStop  context.CancelFunc
	ready    atomic.Bool
	ln       net.Listener
	http     *http.Server
	wg       sync.WaitGroup
	closeErr error
	once     sync.Once
}

// New opens the store the config names and builds the server. It does
// not listen yet.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	if len(cfg.APITokens) == 0 {
		cfg.APITokens = []string{randomHex(16)}
	}
	st, err := openStore(cfg, log)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := NewMetrics(reg)
	hub, err := NewHub(HubConfig{
		HeartbeatTimeout: cfg.HeartbeatTimeout,
		LeaseTTL:         cfg.LeaseTTL,
		Prefetch:         hubPrefetch(cfg.Prefetch),
		MaxMessageBytes:  cfg.MaxMessageBytes,
		Retention:        cfg.Retention,
		ShutdownTimeout:  cfg.ShutdownTimeout,
		Metrics:          metrics,
	}, st, log.With("component", "hub"))
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("hub: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:    cfg,
		log:    log,
		store:  st,
		hub:    hub,
		reg:    reg,
		ctx:    ctx,
		cancel: cancel,
	}
	for _, t := range cfg.APITokens {
		s.tokens = append(s.tokens, []byte(t))
	}
	s.events = newBroker(st, hub, metrics, log.With("component", "events"))
	s.echo = s.routes()
	return s, nil
}

// hubPrefetch maps Config.Prefetch, where 0 means none, to HubConfig's,
// where 0 means the default and a negative value none.
func hubPrefetch(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func openStore(cfg Config, log *slog.Logger) (store.Store, error) {
	if cfg.RedisURL == "" {
		st, err := memstore.New()
		if err != nil {
			return nil, fmt.Errorf("memory store: %w", err)
		}
		log.Info("store", "kind", "memory", "durable", false)
		return st, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := redisstore.New(ctx, cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("redis store: %w", err)
	}
	log.Info("store", "kind", "redis", "url", redactURL(cfg.RedisURL))
	if policy, err := st.MaxMemoryPolicy(ctx); err == nil && policy != "noeviction" {
		log.Warn("redis maxmemory-policy may evict task state; set it to noeviction", "maxmemory_policy", policy)
	}
	return st, nil
}

// Start binds the listen address and serves until Close.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.ln = ln
	s.http = &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	hubCtx, hubStop := context.WithCancel(context.Background())
	s.hubStop = hubStop
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		if err := s.hub.Run(hubCtx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("hub stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.events.run(s.ctx)
	}()
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	}()
	s.ready.Store(true)
	s.log.Info("listening", "addr", ln.Addr().String(), "coordinator", s.hub.ID())
	return nil
}

// Run starts the server and serves until ctx ends, then shuts down
// gracefully.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	return s.Close()
}

// Addr is the address the server listens on ("127.0.0.1:43210").
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL is the server's base URL on loopback-reachable form.
func (s *Server) URL() string {
	addr := s.Addr()
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "::" || host == "0.0.0.0" || host == "") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return "http://" + addr
}

// Tokens are the API tokens in force (one generated when none was given).
func (s *Server) Tokens() []string { return s.cfg.APITokens }

// Store is the server's store, for tests that look underneath.
func (s *Server) Store() store.Store { return s.store }

// Hub is the server's tab hub.
func (s *Server) Hub() *Hub { return s.hub }

// Close shuts down in order: readiness off (load balancers stop sending),
// streams and waits end, the hub hands every in-flight task back and
// closes tab sockets with "going away", the HTTP server stops, the store
// closes. Safe to call twice.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.ready.Store(false)
		s.cancel()
		if s.hubStop != nil {
			s.hubStop()
		}
		if s.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
			if err := s.http.Shutdown(ctx); err != nil {
				s.closeErr = fmt.Errorf("http shutdown: %w", err)
			}
			cancel()
		}
		s.wg.Wait()
		if err := s.store.Close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("close store: %w", err)
		}
	})
	return s.closeErr
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
