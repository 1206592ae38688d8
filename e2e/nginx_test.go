package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/coordinator/client"
	"github.com/tabgrid/tabgrid/coordinator/simtab"
	"github.com/tabgrid/tabgrid/store/redistest"
	"github.com/tabgrid/tabgrid/tasks"
)

// nginxProc is deploy/nginx.conf running for real in front of
// coordinators on loopback, rewritten only where the compose network
// differs from a test machine (addresses, paths, Docker's resolver).
type nginxProc struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{}
	logs *lockedBuffer
}

// startNginx runs the repository's nginx config with upstream i pointing
// at backends[i]. It skips the test when nginx is not installed: nginx is
// not a CI dependency, and TestNginxConfig checks the file statically.
func startNginx(t *testing.T, backends ...string) *nginxProc {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx is not installed; deploy/nginx.conf is checked statically by TestNginxConfig only")
	}
	src, err := os.ReadFile("../deploy/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	conf := string(src)
	i := 0
	conf = regexp.MustCompile(`server coordinator-\d+:8080( resolve)?`).ReplaceAllStringFunc(conf, func(string) string {
		if i >= len(backends) {
			t.Fatalf("nginx.conf lists more upstreams than the %d backends given", len(backends))
		}
		i++
		return "server " + strings.TrimPrefix(backends[i-1], "http://")
	})
	if i != len(backends) {
		t.Fatalf("nginx.conf lists %d upstreams, the test started %d", i, len(backends))
	}
	for _, r := range []struct{ old, new string }{
		// Docker's embedded DNS does not exist here; the addresses are IPs.
		{"resolver 127.0.0.11 valid=10s ipv6=off;", ""},
		{"listen 80;", "listen " + addr + ";"},
		{"worker_processes auto;", "worker_processes 1;\ndaemon off;\npid " + dir + "/nginx.pid;"},
		{"worker_connections 16384;", "worker_connections 512;"},
		{"access_log /dev/stdout main;", "access_log off;\n" + nginxTempPaths(dir)},
	} {
		if !strings.Contains(conf, r.old) {
			t.Fatalf("nginx.conf no longer contains %q: update this test's rewrite", r.old)
		}
		conf = strings.Replace(conf, r.old, r.new, 1)
	}
	if os.Geteuid() == 0 {
		// As root, nginx runs its workers as nobody, who cannot write
		// the test's private temp dir (request bodies are spooled there).
		conf = "user root;\n" + conf
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &nginxProc{url: "http://" + addr, done: make(chan struct{}), logs: &lockedBuffer{}}
	n.cmd = exec.Command(bin, "-p", dir, "-c", path, "-e", "stderr")
	n.cmd.Stdout = lineWriter{n.logs}
	n.cmd.Stderr = lineWriter{n.logs}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	go func() { n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			n.cmd.Process.Kill()
			<-n.done
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(n.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n
			}
		}
		select {
		case <-n.done:
			t.Fatalf("nginx exited:\n%s", n.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not proxy /healthz within 20s (%v):\n%s", err, n.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func nginxTempPaths(dir string) string {
	var b strings.Builder
	for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "%s_temp_path %s;\n", p, filepath.Join(dir, p))
	}
	return b.String()
}

// lineWriter feeds a process's output to a lockedBuffer line by line.
type lineWriter struct{ b *lockedBuffer }

func (w lineWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.b.add(l)
	}
	return len(p), nil
}

// TestNginxFrontsTwoCoordinators runs the deployment's shape on loopback:
// Redis with the compose file's settings, two `tabgrid serve` processes,
// the real nginx config in front. Tabs, the CLI, the Go client and an
// event stream all go through the proxy; then one coordinator dies.
func TestNginxFrontsTwoCoordinators(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil {
		if os.Getenv("TABGRID_REQUIRE_ALL") == "1" {
			t.Fatal("nginx is required (TABGRID_REQUIRE_ALL=1) but not on PATH: apt-get install nginx-light")
		}
		t.Skip("nginx is not installed; deploy/nginx.conf is checked statically by TestNginxConfig only")
	}
	rds := redistest.Start(t, redistest.WithArgs("--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction"))
	c1 := startCoordinator(t, rds.URL())
	c2 := startCoordinator(t, rds.URL())
	ngx := startNginx(t, c1.URL(), c2.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := client.New(ngx.url, apiToken)

	wsURL := "ws" + strings.TrimPrefix(ngx.url, "http") + "/ws"
	for i := 0; i < 4; i++ {
		tab, err := simtab.Dial(ctx, wsURL, simtab.Options{Capacity: 2, Name: fmt.Sprintf("via-nginx-%d", i), Reconnect: true, ReconnectMax: time.Second})
		if err != nil {
			t.Fatalf("tab %d through nginx: %v\n%s", i, err, ngx.logs.String())
		}
		t.Cleanup(func() { tab.Close() })
	}
	t.Run("round robin spreads the tabs over both coordinators", func(t *testing.T) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, err := cl.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Tabs == 4 && st.Coordinators == 2 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("stats %+v: want 4 tabs on 2 coordinators", st)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("events stream through the proxy", func(t *testing.T) {
		sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
		defer scancel()
		req, _ := http.NewRequestWithContext(sctx, "GET", ngx.url+"/api/v1/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			t.Fatalf("content type %q", ct)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			if sc.Text() == "event: snapshot" {
				return
			}
		}
		t.Fatalf("no snapshot event through the proxy: %v", sc.Err())
	})

	t.Run("the CLI binary submits through the proxy", func(t *testing.T) {
		const input = `{"from":0,"to":3000000}`
		cmd := exec.CommandContext(ctx, tabgridBinary(t), "submit", "--kind", "primes", "--input", input, "--split", "12")
		cmd.Env = append(os.Environ(), "TABGRID_SERVER="+ngx.url, "TABGRID_TOKEN="+apiToken)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("tabgrid submit: %v\n%s", err, stderr.String())
		}
		var got, want struct{ Count int }
		if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
			t.Fatalf("stdout %q: %v", stdout.String(), err)
		}
		json.Unmarshal(referenceResult(t, "primes", input, 12), &want)
		if got.Count != want.Count || want.Count == 0 {
			t.Fatalf("printed count %d, the Go reference says %d", got.Count, want.Count)
		}
	})

	t.Run("an oversized job gets tabgrid's JSON 413, not nginx's", func(t *testing.T) {
		items := bytes.Repeat([]byte("1,"), (10<<20)/2+1024)
		input := append(append([]byte(`{"code":"(x) => x","items":[`), items...), []byte(`1]}`)...)
		_, err := cl.Submit(ctx, tasks.Spec{Kind: "js", Input: input}, client.SubmitOptions{})
		var apiErr *client.Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusRequestEntityTooLarge || apiErr.Code != "too_large" {
			t.Fatalf("error %v, want a 413 too_large from tabgrid\n%s", err, ngx.logs.String())
		}
	})

	t.Run("one coordinator dies, the grid goes on through the other", func(t *testing.T) {
		c1.kill()
		for i := 0; i < 6; i++ { // round robin hits the dead one every other request
			if _, err := cl.Stats(ctx); err != nil {
				t.Fatalf("request %d after the kill: %v\n%s", i, err, ngx.logs.String())
			}
		}
		spec := tasks.Spec{Kind: "primes", Input: json.RawMessage(`{"from":1000000,"to":2000000}`), Split: &tasks.SplitHint{Tasks: 8}}
		job, err := cl.Submit(ctx, spec, client.SubmitOptions{IdempotencyKey: "after-kill"})
		if err != nil {
			t.Fatalf("submit after the kill: %v", err)
		}
		job, err = cl.Wait(ctx, job.ID, 5*time.Second, nil)
		if err != nil || job.State != tasks.JobSucceeded {
			t.Fatalf("job after the kill: %+v, %v", job, err)
		}
		var got, want struct{ Count int }
		json.Unmarshal(job.Result, &got)
		json.Unmarshal(referenceResult(t, "primes", string(spec.Input), 8), &want)
		if got.Count != want.Count {
			t.Fatalf("count %d, want %d", got.Count, want.Count)
		}
	})
}

// referenceResult computes a job's result with the kind's Go splitter,
// reference implementation and reducer.
func referenceResult(t *testing.T, kind, input string, split int) json.RawMessage {
	t.Helper()
	res, _, err := tasks.Reference(context.Background(), kind, "ref", json.RawMessage(input), split)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
