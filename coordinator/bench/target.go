package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tabgrid/tabgrid/coordinator"
)

// target is one coordinator under test: a child process (the normal
// case, so that its CPU time and memory are its own) or a server in this
// process (tests and CPU profiles).
type target interface {
	URL() string
	// CPU is the coordinator's CPU time so far; ok is false when it
	// cannot be told apart from the benchmark's.
	CPU() (d time.Duration, ok bool, err error)
	// RSS is the coordinator's resident memory; ok as for CPU.
	RSS() (n int64, ok bool, err error)
	Close() error
}

// coordSettings are the coordinator settings a scenario needs.
type coordSettings struct {
	redisURL string
	token    string
	maxTasks int
}

// starter starts coordinators: re-executing a tabgrid binary, or in
// process.
type starter func(ctx context.Context, s coordSettings) (target, error)

// execStarter starts `bin serve` as a child process.
func execStarter(bin string, log *slog.Logger) starter {
	return func(ctx context.Context, s coordSettings) (target, error) {
		return startChild(ctx, bin, s, log)
	}
}

// inProcessStarter starts coordinator.Server in this process.
func inProcessStarter(log *slog.Logger) starter {
	return func(ctx context.Context, s coordSettings) (target, error) {
		cfg := coordinator.DefaultConfig()
		cfg.Addr = "127.0.0.1:0"
		cfg.RedisURL = s.redisURL
		cfg.APITokens = []string{s.token}
		if s.maxTasks > cfg.Limits.MaxTasks {
			cfg.Limits.MaxTasks = s.maxTasks
		}
		srv, err := coordinator.New(cfg, log)
		if err != nil {
			return nil, fmt.Errorf("new coordinator: %w", err)
		}
		if err := srv.Start(); err != nil {
			srv.Close()
			return nil, fmt.Errorf("start coordinator: %w", err)
		}
		return inProcess{srv}, nil
	}
}

type inProcess struct{ srv *coordinator.Server }

func (p inProcess) URL() string                       { return p.srv.URL() }
func (p inProcess) CPU() (time.Duration, bool, error) { return 0, false, nil }
func (p inProcess) RSS() (int64, bool, error)         { return 0, false, nil }
func (p inProcess) Close() error                      { return p.srv.Close() }

// child is a `tabgrid serve` process.
type child struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{} // closed when the process has exited
	tail *lineTail     // its last log lines, for errors
	wg   sync.WaitGroup
	once sync.Once
	err  error
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

func startChild(ctx context.Context, bin string, s coordSettings, log *slog.Logger) (*child, error) {
	args := []string{"serve", "--addr", "127.0.0.1:0", "--api-token", s.token, "--log-level", "info"}
	if s.redisURL != "" {
		args = append(args, "--redis", s.redisURL)
	}
	if s.maxTasks > 0 {
		args = append(args, "--max-tasks", fmt.Sprint(s.maxTasks))
	}
	cmd := exec.Command(bin, args...)
	// The child's configuration is exactly its flags: TABGRID_* settings
	// of the caller's environment must not change what is measured.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TABGRID_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("stderr pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s serve: %w", bin, err)
	}
	c := &child{cmd: cmd, done: make(chan struct{}), tail: &lineTail{max: 40}}
	addr := make(chan string, 1)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.readLog(stderr, addr, log)
	}()
	go func() {
		c.wg.Wait() // the pipe is read to its end before Wait closes it
		cmd.Wait()
		close(c.done)
	}()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case a := <-addr:
		c.url = "http://" + a
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("coordinator exited at start: %s", c.tail.String())
	case <-t.C:
	case <-ctx.Done():
	}
	c.Close()
	return nil, fmt.Errorf("coordinator did not log its address: %s", c.tail.String())
}

// readLog finds the listening line and keeps draining the child's log so
// that it never blocks on a full pipe. Warnings and errors are passed on.
func (c *child) readLog(r io.Reader, addr chan<- string, log *slog.Logger) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	found := false
	for sc.Scan() {
		line := sc.Text()
		c.tail.add(line)
		if !found {
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				found = true
				addr <- m[1]
			}
		}
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
			log.Debug("coordinator log", "pid", c.cmd.Process.Pid, "line", line)
		}
	}
	io.Copy(io.Discard, r)
}

func (c *child) URL() string { return c.url }

func (c *child) CPU() (time.Duration, bool, error) {
	d, err := procCPU(c.cmd.Process.Pid)
	return d, err == nil, err
}

func (c *child) RSS() (int64, bool, error) {
	n, err := procRSS(c.cmd.Process.Pid)
	return n, err == nil, err
}

// Close stops the child with SIGTERM (its graceful shutdown), and kills
// it if that takes too long. Safe twice.
func (c *child) Close() error {
	c.once.Do(func() {
		c.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(20 * time.Second)
		defer t.Stop()
		select {
		case <-c.done:
		case <-t.C:
			c.cmd.Process.Kill()
			<-c.done
			c.err = errors.New("coordinator did not stop on SIGTERM; killed")
		}
	})
	return c.err
}

// lineTail keeps the last max lines written to it.
type lineTail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *lineTail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == t.max {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:t.max-1]
	}
	t.lines = append(t.lines, s)
}

func (t *lineTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
