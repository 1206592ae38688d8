package coordinator

import (
	"errors"
	"fmt"
	"time"

	"github.com/tabgrid/tabgrid/tasks"
)

// Config is everything a coordinator can be told. cmd/tabgrid fills it
// from flags and environment; tests fill it directly.
type Config struct {
	Addr      string   // listen address, ":8080"
	RedisURL  string   // empty = in-memory store
	APITokens []string // bearer tokens for mutating calls; empty = one is generated

	HeartbeatTimeout time.Duration // a tab silent this long is dropped
	LeaseTTL         time.Duration // a coordinator silent this long is presumed dead
	Prefetch         int           // tasks per tab beyond its capacity
	MaxMessageBytes  int64         // largest WebSocket message from a tab
	MaxBodyBytes     int64         // largest REST request body
	MaxWait          time.Duration // longest ?wait= a request may ask for
	Retention        time.Duration // finished jobs are deleted after this
	ShutdownTimeout  time.Duration // how long SIGTERM waits for handing work back
	Limits           tasks.Limits  // per-job limits
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Addr:             ":8080",
		HeartbeatTimeout: 15 * time.Second,
		LeaseTTL:         15 * time.Second,
		Prefetch:         2,
		MaxMessageBytes:  1 << 20,
		MaxBodyBytes:     10 << 20,
		MaxWait:          5 * time.Minute,
		Retention:        24 * time.Hour,
		ShutdownTimeout:  10 * time.Second,
		Limits:           tasks.DefaultLimits(),
	}
}

// Validate reports every setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Addr != "", "addr is empty")
	check(c.HeartbeatTimeout >= 100*time.Millisecond, "heartbeat timeout %s is below 100ms", c.HeartbeatTimeout)
	check(c.LeaseTTL >= 100*time.Millisecond, "lease ttl %s is below 100ms", c.LeaseTTL)
	check(c.Prefetch >= 0 && c.Prefetch <= 1000, "prefetch %d is not within 0..1000", c.Prefetch)
	check(c.MaxMessageBytes >= 1024, "max message bytes %d is below 1024", c.MaxMessageBytes)
	check(c.MaxBodyBytes >= 1024, "max body bytes %d is below 1024", c.MaxBodyBytes)
	check(c.MaxWait >= 0, "max wait is negative")
	check(c.Retention > 0, "retention must be positive")
	check(c.ShutdownTimeout > 0, "shutdown timeout must be positive")
	check(c.Limits.MaxTasks > 0, "max tasks must be positive")
	check(c.Limits.MaxInputBytes > 0, "max input bytes must be positive")
	check(int64(c.Limits.MaxInputBytes) <= c.MaxBodyBytes, "max input bytes %d exceeds max body bytes %d", c.Limits.MaxInputBytes, c.MaxBodyBytes)
	for _, t := range c.APITokens {
		check(len(t) >= 8, "an API token is shorter than 8 characters")
	}
	return errors.Join(errs...)
}
