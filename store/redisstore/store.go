// Package redisstore is the Redis implementation of store.Store: durable,
// shared by many coordinators, and runs on one Redis server or on a Redis
// Cluster. Every multi-key change is a Lua script over the keys of one job
// (scripts.go); the key layout is in keys.go and docs/architecture.md.
//
// It imports store and tasks, never memstore or the coordinator.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/tasks"
)

var _ store.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithPrefix sets the prefix of every key (default "tg"), so that several
// stores, or tests, can share one Redis without seeing each other.
func WithPrefix(p string) Option { return func(s *Store) { s.k = newKeys(p) } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithClock sets the clock used for job timestamps (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Store keeps tabgrid's state in Redis. It is safe for concurrent use.
type Store struct {
	rdb redis.UniversalClient
	k   keys
	log *slog.Logger
	now func() time.Time

	rr atomic.Uint64 // rotates the first job served among equal priorities

	mu      sync.Mutex
	intents map[string]map[string]time.Time // worker → job → when recorded

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
	wg        sync.WaitGroup // Subscribe goroutines
}

// intentTTL bounds how long the store trusts that a worker's intent record
// for a job is still in Redis (another coordinator's Reap may remove it).
const intentTTL = 2 * time.Second

// New connects to Redis. url is either one server,
// redis://[user:pass@]host:port/db, or a Redis Cluster named by its
// nodes: redis://host1:port1?addr=host2:port2&addr=host3:port3 — an addr
// query parameter means cluster. Other go-redis URL options (dial_timeout,
// pool_size, ...) are accepted. New fails, wrapping tasks.ErrUnavailable,
// when Redis does not answer PING.
func New(ctx context.Context, rawURL string, opts ...Option) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	var rdb redis.UniversalClient
	if u.Query().Has("addr") {
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("redis cluster url: %w", err)
		}
		if !u.Query().Has("max_retries") {
			o.MaxRetries = -1
		}
		rdb = redis.NewClusterClient(o)
	} else {
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("redis url: %w", err)
		}
		// Scripts are not idempotent: a retried claim whose first reply was
		// lost would lease tasks nobody hears of. Fail fast and let the
		// caller try again instead.
		if !u.Query().Has("max_retries") {
			o.MaxRetries = -1
		}
		rdb = redis.NewClient(o)
	}
	s := &Store{
		rdb:     rdb,
		k:       newKeys("tg"),
		log:     slog.New(slog.DiscardHandler),
		now:     time.Now,
		intents: map[string]map[string]time.Time{},
		done:    make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	if err := s.Ping(ctx); err != nil {
		rdb.Close()
		return nil, err
	}
	return s, nil
}

// Ping reports whether Redis answers (readiness).
func (s *Store) Ping(ctx context.Context) error {
	return wrapErr("ping redis", s.rdb.Ping(ctx).Err())
}

// MaxMemoryPolicy returns Redis's maxmemory-policy. Anything but
// "noeviction" lets Redis evict task state under memory pressure, which
// the coordinator should warn about.
func (s *Store) MaxMemoryPolicy(ctx context.Context) (string, error) {
	m, err := s.rdb.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return "", wrapErr("config get maxmemory-policy", err)
	}
	return m["maxmemory-policy"], nil
}

// Close stops Subscribe goroutines and closes the connections. Safe to call
// twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.wg.Wait()
		s.closeErr = s.rdb.Close()
	})
	return s.closeErr
}

// wrapErr adds context and marks errors that mean "Redis cannot be reached
// or cannot serve now" with tasks.ErrUnavailable, so the API answers 503.
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	var re redis.Error
	if errors.As(err, &re) && !transient(re.Error()) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, tasks.ErrUnavailable, err)
}

// transient server errors mean the server is up but cannot serve now.
func transient(msg string) bool {
	for _, p := range []string{"LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "OOM", "BUSY"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// scriptCall is one script invocation of a pipelined batch.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
}

// runScripts runs the calls in one pipeline (one round trip per node).
// EVALSHA fails with NOSCRIPT after Redis restarted and lost its script
// cache; such a call did not run, so it is run again with Script.Run,
// which falls back to EVAL. Each call's result is in its cmd.
func (s *Store) runScripts(ctx context.Context, calls []*scriptCall) {
	if len(calls) == 1 {
		c := calls[0]
		c.cmd = c.script.Run(ctx, s.rdb, c.keys, c.args...)
		return
	}
	pipe := s.rdb.Pipeline()
	for _, c := range calls {
		c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx)
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			c.cmd = c.script.Run(ctx, s.rdb, c.keys, c.args...)
		}
	}
}

func nsString(t time.Time) string { return fmt.Sprint(t.UnixNano()) }

func ms(t time.Time) float64 { return float64(t.UnixMilli()) }
