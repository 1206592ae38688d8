// Package e2e holds black-box tests of tabgrid: the real binary, real
// redis-server processes and real headless Chromium tabs, on loopback.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const apiToken = "e2e-token-0123456789"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// tabgridBinary builds cmd/tabgrid once per test run.
func tabgridBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tabgrid-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tabgrid")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/tabgrid").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freeAddr reserves a loopback port long enough to learn its number, so a
// process can be restarted on the same address.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// coordProc is a `tabgrid serve` child process.
type coordProc struct {
	t    testing.TB
	addr string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
	logs *lockedBuffer
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startCoordinator runs `tabgrid serve` on a fixed free port (so a restart
// comes back at the same address) and waits until it listens.
func startCoordinator(t testing.TB, redisURL string, extra ...string) *coordProc {
	t.Helper()
	c := &coordProc{t: t, addr: freeAddr(t), logs: &lockedBuffer{}}
	c.args = append([]string{"serve", "--addr", c.addr, "--api-token", apiToken}, extra...)
	if redisURL != "" {
		c.args = append(c.args, "--redis", redisURL)
	}
	c.start()
	t.Cleanup(c.kill)
	return c
}

func (c *coordProc) start() {
	c.t.Helper()
	cmd := exec.Command(tabgridBinary(c.t), c.args...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start coordinator: %v", err)
	}
	c.cmd = cmd
	c.done = make(chan struct{})
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		var once sync.Once
		for sc.Scan() {
			line := sc.Text()
			c.logs.add(line)
			if listeningRE.MatchString(line) {
				once.Do(func() { close(up) })
			}
		}
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		close(c.done)
	}()
	select {
	case <-up:
	case <-c.done:
		c.t.Fatalf("coordinator exited at start:\n%s", c.logs.String())
	case <-time.After(30 * time.Second):
		c.t.Fatalf("coordinator did not listen within 30s:\n%s", c.logs.String())
	}
}

func (c *coordProc) URL() string { return "http://" + c.addr }

// kill sends SIGKILL and waits: a crash, nothing handed back.
func (c *coordProc) kill() {
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.done
	}
}

// term sends SIGTERM and waits for a clean exit.
func (c *coordProc) term() {
	c.t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("coordinator did not exit within 30s of SIGTERM:\n%s", c.logs.String())
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		c.t.Errorf("coordinator exited %d after SIGTERM:\n%s", code, c.logs.String())
	}
}

// restart starts the same coordinator again at the same address.
func (c *coordProc) restart() { c.start() }

type lockedBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *lockedBuffer) add(s string) {
	b.mu.Lock()
	b.lines = append(b.lines, s)
	b.mu.Unlock()
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.lines)
	return strings.Join(b.lines[max(0, n-40):], "\n")
}

// proxy is a reverse proxy in front of several coordinators, as a load
// balancer would be: it sends each request (WebSocket upgrades included) to
// the next backend that answers, skipping dead ones.
type proxy struct {
	srv      *httptest.Server
	backends []*url.URL
	next     atomic.Uint64
}

func startProxy(t testing.TB, backends ...string) *proxy {
	t.Helper()
	p := &proxy{}
	for _, b := range backends {
		u, err := url.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		p.backends = append(p.backends, u)
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *proxy) URL() string { return p.srv.URL }

func (p *proxy) serve(w http.ResponseWriter, r *http.Request) {
	n := len(p.backends)
	start := int(p.next.Add(1))
	for i := 0; i < n; i++ {
		b := p.backends[(start+i)%n]
		conn, err := net.DialTimeout("tcp", b.Host, 500*time.Millisecond)
		if err != nil {
			continue // dead backend: try the next, as a health-checking balancer would
		}
		conn.Close()
		rp := httputil.NewSingleHostReverseProxy(b)
		rp.FlushInterval = -1 // stream server-sent events at once
		rp.ServeHTTP(w, r)
		return
	}
	http.Error(w, "no backend", http.StatusBadGateway)
}

// api is a small REST client for the tests.
type api struct {
	t    testing.TB
	base string
}

func (a api) call(method, path string, body any, out any) int {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

type jobView struct {
	ID     string          `json:"id"`
	State  string          `json:"state"`
	Error  string          `json:"error"`
	Result json.RawMessage `json:"result"`
	Tasks  struct {
		Total, Pending, Running, Succeeded, Failed int
	} `json:"tasks"`
}

func (a api) submit(spec map[string]any) jobView {
	a.t.Helper()
	var j jobView
	if code := a.call("POST", "/api/v1/jobs", spec, &j); code != http.StatusCreated {
		a.t.Fatalf("submit %v: status %d", spec, code)
	}
	return j
}

func (a api) job(id string) jobView {
	a.t.Helper()
	var j jobView
	a.call("GET", "/api/v1/jobs/"+id, nil, &j)
	return j
}

// waitJob polls until the job is final or the deadline passes. It
// tolerates a coordinator that is down for a while (scenarios restart them).
func (a api) waitJob(id string, within time.Duration) jobView {
	a.t.Helper()
	deadline := time.Now().Add(within)
	var last jobView
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", a.base+"/api/v1/jobs/"+id+"?wait=5s", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		var j jobView
		err = json.NewDecoder(resp.Body).Decode(&j)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		last = j
		if j.State == "succeeded" || j.State == "failed" || j.State == "cancelled" {
			if j.State == "succeeded" {
				var r json.RawMessage
				a.call("GET", "/api/v1/jobs/"+id+"/result", nil, &r)
				j.Result = r
			}
			return j
		}
	}
	a.t.Fatalf("job %s not final within %s: %+v", id, within, last)
	return last
}
