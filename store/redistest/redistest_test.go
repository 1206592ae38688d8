package redistest

import (
	"strings"
	"testing"
	"time"
)

func TestServerKillRestartKeepsAOFData(t *testing.T) {
	s := Start(t, WithAOF())
	if _, err := command(s.Addr(), "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	// appendfsync everysec: make the write durable before the SIGKILL.
	if _, err := command(s.Addr(), "BGREWRITEAOF"); err != nil {
		t.Fatal(err)
	}
	waitAOFRewrite(t, s)
	s.Kill()
	if _, err := command(s.Addr(), "PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	s.Restart()
	got, err := command(s.Addr(), "GET", "k")
	if err != nil || got != "v" {
		t.Fatalf("after restart GET k = %q, %v; want v", got, err)
	}
	if !strings.HasPrefix(s.URL(), "redis://127.0.0.1:") {
		t.Fatalf("URL %q", s.URL())
	}
}

func waitAOFRewrite(t *testing.T, s *Server) {
	t.Helper()
	for range 500 {
		info, err := command(s.Addr(), "INFO", "persistence")
		if err == nil && strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0") {
			return
		}
		sleep()
	}
	t.Fatal("AOF rewrite did not finish")
}

func TestCluster(t *testing.T) {
	c := StartCluster(t)
	if len(c.Nodes) != 3 {
		t.Fatalf("%d nodes", len(c.Nodes))
	}
	u := c.URL()
	if strings.Count(u, "addr=") != 2 {
		t.Fatalf("URL %q", u)
	}
	// A key lands on exactly one node; the others redirect with MOVED.
	moved := 0
	for _, n := range c.Nodes {
		if _, err := command(n.Addr(), "SET", "somekey", "1"); err != nil && strings.Contains(err.Error(), "MOVED") {
			moved++
		}
	}
	if moved != 2 {
		t.Fatalf("%d nodes answered MOVED, want 2", moved)
	}
}

func sleep() { time.Sleep(10 * time.Millisecond) }
