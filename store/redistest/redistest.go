// Package redistest starts real redis-server processes for tests: one
// server on a free loopback port, or a three-node Redis Cluster. Each test
// gets servers of its own, so it may flush, kill and restart them without
// touching anyone else.
//
// When redis-server is not on PATH the calling test is skipped, unless
// TABGRID_REQUIRE_ALL=1 is set, when it fails instead (CI must not skip
// silently).
//
// This package imports nothing of tabgrid's.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to answer PING.
const startTimeout = 20 * time.Second

// Option configures a Server.
type Option func(*config)

type config struct {
	aof  bool
	args []string
}

// WithAOF makes the server durable: appendonly with fsync every second, in
// a directory of the test's, so that data survives Kill and Restart.
func WithAOF() Option { return func(c *config) { c.aof = true } }

// WithArgs adds redis-server command line arguments ("--maxmemory", "10mb").
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// Server is one redis-server process owned by a test.
type Server struct {
	tb   testing.TB
	bin  string
	port int
	dir  string
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// Start runs redis-server on a free 127.0.0.1 port and waits until it
// answers PING. The server is killed when the test ends.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	bin := lookup(tb, "redis-server")
	var c config
	for _, o := range opts {
		o(&c)
	}
	dir := tb.TempDir()
	args := []string{"--bind", "127.0.0.1", "--dir", dir, "--save", "", "--protected-mode", "no"}
	if c.aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "everysec")
	} else {
		args = append(args, "--appendonly", "no")
	}
	args = append(args, c.args...)
	s := &Server{tb: tb, bin: bin, dir: dir, args: args}
	tb.Cleanup(s.stop)
	// A free port can be taken by someone else between our probe and the
	// server's bind; try a few ports before giving up.
	var err error
	for range 3 {
		s.port = freePort(tb)
		if err = s.start(); err == nil {
			return s
		}
	}
	tb.Fatalf("redistest: start redis-server: %v", err)
	return nil
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the server's redis:// URL (database 0).
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Dir is the server's working directory (AOF files live there).
func (s *Server) Dir() string { return s.dir }

// Kill sends SIGKILL and waits for the process to exit. Safe to call on a
// server that is already down.
func (s *Server) Kill() {
	s.tb.Helper()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the server again on the same port and directory (so an
// AOF server comes back with its data) and waits until it answers PING.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		s.tb.Fatalf("redistest: restart redis-server on port %d: %v", s.port, err)
	}
}

func (s *Server) start() error {
	args := append([]string{"--port", strconv.Itoa(s.port)}, s.args...)
	cmd := exec.Command(s.bin, args...)
	logf, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { // owned by the Server: Kill and stop wait for done
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := waitPing(s.Addr(), done); err != nil {
		s.Kill()
		return fmt.Errorf("%w (log: %s)", err, tail(filepath.Join(s.dir, "redis.log")))
	}
	return nil
}

func (s *Server) stop() { s.Kill() }

// Cluster is three redis-server nodes forming one Redis Cluster with no
// replicas.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts three --cluster-enabled nodes, joins them with
// redis-cli --cluster create and waits until every node reports
// cluster_state:ok. It takes a few seconds: start one per package or per
// parent test, not one per subtest.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	cli := lookup(tb, "redis-cli")
	c := &Cluster{}
	for range 3 {
		// The cluster bus needs a port of its own (by default port+10000,
		// which may exceed 65535), so name a free one explicitly.
		bus := freePort(tb)
		c.Nodes = append(c.Nodes, Start(tb, WithArgs("--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-port", strconv.Itoa(bus),
			"--cluster-node-timeout", "5000")))
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, n := range c.Nodes {
		for {
			info, err := command(n.Addr(), "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3") {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("redistest: cluster not ok on %s: %v %s", n.Addr(), err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// URL names the cluster in the form go-redis ParseClusterURL reads:
// redis://first?addr=second&addr=third.
func (c *Cluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr()
	for i, n := range c.Nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + n.Addr()
	}
	return u
}

// lookup finds a binary or skips (fails under TABGRID_REQUIRE_ALL=1).
func lookup(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("redistest: %s not found on PATH (apt-get install redis-server)", name)
		if os.Getenv("TABGRID_REQUIRE_ALL") == "1" {
			tb.Fatal(msg + "; TABGRID_REQUIRE_ALL=1 forbids skipping")
		}
		tb.Skip(msg)
	}
	return p
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("redistest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitPing polls until the server answers +PONG (not -LOADING), the process
// exits, or startTimeout passes.
func waitPing(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		reply, err := command(addr, "PING")
		if err == nil && reply == "PONG" {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited before answering PING on %s", addr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG from %s within %s: %v %q", addr, startTimeout, err, reply)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// command sends one command in RESP and reads a simple, error or bulk
// string reply: enough for PING and CLUSTER INFO without a client library.
func command(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", fmt.Errorf("redis: %s", line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("redis: bad bulk reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("redis: unexpected reply %q", line)
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
