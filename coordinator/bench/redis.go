package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// redisServer is a redis-server process of the benchmark's own, on a free
// loopback port, with persistence off: the bench measures the
// coordinator, not the disk.
type redisServer struct {
	cmd    *exec.Cmd
	addr   string
	dir    string
	client *goredis.Client
	done   chan struct{}
	closed bool
}

// startRedis starts redis-server (found on PATH) and waits until it
// answers PING.
func startRedis(ctx context.Context) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found: %w", err)
	}
	dir, err := os.MkdirTemp("", "tabgrid-bench-redis-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	// The port is found by binding :0 and releasing it; another process
	// could take it in between, so a failed start is retried.
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		r, err := launchRedis(ctx, bin, dir, port)
		if err == nil {
			return r, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

func launchRedis(ctx context.Context, bin, dir string, port int) (*redisServer, error) {
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--maxclients", "10000")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	r := &redisServer{cmd: cmd, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(r.done)
	}()
	r.client = goredis.NewClient(&goredis.Options{Addr: r.addr})
	deadline := time.Now().Add(10 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := r.client.Ping(pctx).Err()
		cancel()
		if err == nil {
			return r, nil
		}
		select {
		case <-r.done:
			r.client.Close()
			return nil, fmt.Errorf("redis-server on port %d exited at start", port)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.stop()
			return nil, fmt.Errorf("redis-server on port %d not answering: %w", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL is the redis:// URL coordinators are given.
func (r *redisServer) URL() string { return "redis://" + r.addr + "/0" }

// commandCalls is the sum of calls over INFO commandstats, and the part
// of it that ran Lua scripts (EVAL, EVALSHA, FCALL and their _RO forms).
// Redis counts commands a script runs as calls of their own too, so the
// sum is every command executed while script calls are round trips of
// the scripted kind.
type commandCalls struct {
	all     int64
	scripts int64
	byName  map[string]int64
}

func (r *redisServer) commandCalls(ctx context.Context) (commandCalls, error) {
	s, err := r.client.Info(ctx, "commandstats").Result()
	if err != nil {
		return commandCalls{}, fmt.Errorf("info commandstats: %w", err)
	}
	return parseCommandStats(s)
}

func parseCommandStats(s string) (commandCalls, error) {
	c := commandCalls{byName: map[string]int64{}}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			if k != "calls" {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return c, fmt.Errorf("parse commandstats %q: %w", line, err)
			}
			c.byName[name] += n
			c.all += n
			switch name {
			case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
				c.scripts += n
			}
		}
	}
	return c, nil
}

// sub returns the calls made between before and c, leaving out the one
// INFO that read before (it is counted in c).
func (c commandCalls) sub(before commandCalls) commandCalls {
	d := commandCalls{all: c.all - before.all - 1, scripts: c.scripts - before.scripts, byName: map[string]int64{}}
	for k, v := range c.byName {
		if n := v - before.byName[k]; n > 0 {
			d.byName[k] = n
		}
	}
	if d.byName["info"]--; d.byName["info"] <= 0 {
		delete(d.byName, "info")
	}
	return d
}

// stop shuts redis-server down and removes its directory. Safe twice.
func (r *redisServer) stop() error {
	if r == nil || r.closed {
		return nil
	}
	r.closed = true
	r.client.Close()
	var err error
	if r.cmd.Process != nil {
		r.cmd.Process.Signal(os.Interrupt)
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			r.cmd.Process.Kill()
			<-r.done
			err = errors.New("redis-server did not stop on SIGINT; killed")
		}
	}
	os.RemoveAll(r.dir)
	return err
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// top names the n most called commands with their calls per task.
func (c commandCalls) top(n, tasks int) string {
	names := make([]string, 0, len(c.byName))
	for k := range c.byName {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if c.byName[names[i]] != c.byName[names[j]] {
			return c.byName[names[i]] > c.byName[names[j]]
		}
		return names[i] < names[j]
	})
	if len(names) > n {
		names = names[:n]
	}
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %.3f", strings.ToUpper(k), float64(c.byName[k])/float64(max(tasks, 1)))
	}
	return strings.Join(parts, ", ")
}
