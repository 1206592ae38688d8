// Package simtab is a simulated browser tab: a Go WebSocket client that
// speaks the real tab protocol (docs/protocol.md) and runs tasks with the
// kinds' Go reference implementations, for the API tests, the benchmark
// and the end-to-end tests. Knobs make it slow, failing, silent, rude or
// dishonest, to exercise every failure the coordinator must handle.
//
// It imports only tasks and coder/websocket; in particular not the
// coordinator, so that it checks the protocol as written, not as coded.
package simtab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/tabgrid/tabgrid/tasks"
)

// Options shape a tab. The zero value (but for Capacity) is an honest,
// fast tab that does not reconnect.
type Options struct {
	Capacity int    // threads offered: tasks run at once (0 = paused)
	Name     string // label shown on the dashboard
	Client   string // default "tabgrid-simtab/1"

	Delay      time.Duration // waited before running each task: a slow tab
	FailRate   float64       // probability that a task reports an error instead of running
	FailIndex  []int         // task indexes that report an error instead of running
	FailTokens int           // with FailIndex: fail only attempts (tokens) ≤ FailTokens; 0 = every attempt

	Silent  bool // after the welcome, send nothing at all (no heartbeats), keep the socket open
	Garbage bool // after the welcome, send a malformed message
	Forge   bool // for every task received, also report it with a wrong token, and report a task never received

	Reconnect    bool          // after the socket closes, connect again with backoff (until Close)
	ReconnectMin time.Duration // first backoff, default 500ms
	ReconnectMax time.Duration // largest backoff, default 30s

	Heartbeat time.Duration // default: the welcome's heartbeat_ms
	Logger    *slog.Logger  // default: discard
}

// Stats are a tab's counters over all its connections.
type Stats struct {
	Received    int64 // tasks received
	Completed   int64 // results sent with an output
	Errors      int64 // results sent with an error
	Cancelled   int64 // tasks the coordinator cancelled
	MaxInFlight int   // most tasks held at once (received and not yet reported or cancelled)
	Connects    int   // connections that got a welcome
}

// resultQueue is how many finished results wait for the writer before
// the tasks finishing them wait too. It bounds a tab's memory: the
// benchmark runs 10,000 tabs in one process (4096 slots were 290 KiB a
// tab).
const resultQueue = 256

// Tab is one simulated tab. Its methods are safe for concurrent use.
type Tab struct {
	url  string
	opts Options
	log  *slog.Logger

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the tab stopped for good
	once   sync.Once

	mu        sync.Mutex
	cond      *sync.Cond // permits: running < capacity
	capacity  int
	running   int
	held      int
	stats     Stats
	workerID  string
	closeCode websocket.StatusCode
	closeMsg  string
	sess      *session

	received, completed, errs, cancelled atomic.Int64
}

// Dial connects a tab to url (http://host/ws or ws://host/ws) and returns
// once the coordinator has welcomed it. The tab then runs until Close, or
// until its socket closes when Options.Reconnect is off.
func Dial(ctx context.Context, url string, opts Options) (*Tab, error) {
	if opts.Capacity < 0 {
		return nil, errors.New("simtab: negative capacity")
	}
	if opts.Client == "" {
		opts.Client = "tabgrid-simtab/1"
	}
	if opts.ReconnectMin <= 0 {
		opts.ReconnectMin = 500 * time.Millisecond
	}
	if opts.ReconnectMax <= 0 {
		opts.ReconnectMax = 30 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	t := &Tab{url: url, opts: opts, log: log, capacity: opts.Capacity, done: make(chan struct{}), closeCode: -1}
	t.cond = sync.NewCond(&t.mu)
	t.ctx, t.cancel = context.WithCancel(context.Background())
	s, err := t.connect(ctx)
	if err != nil {
		t.cancel()
		return nil, err
	}
	go t.loop(s)
	return t, nil
}

// Close closes the socket (1000) and stops the tab. Safe to call twice.
func (t *Tab) Close() error {
	t.once.Do(t.cancel)
	<-t.done
	return nil
}

// Done is closed when the tab has stopped for good.
func (t *Tab) Done() <-chan struct{} { return t.done }

// Stats returns the tab's counters.
func (t *Tab) Stats() Stats {
	t.mu.Lock()
	s := t.stats
	t.mu.Unlock()
	s.Received = t.received.Load()
	s.Completed = t.completed.Load()
	s.Errors = t.errs.Load()
	s.Cancelled = t.cancelled.Load()
	return s
}

// WorkerID is the id the coordinator gave the current (or last) connection.
func (t *Tab) WorkerID() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.workerID
}

// CloseStatus is the code and reason of the last socket close the tab
// saw from the coordinator; code -1 when none yet (or the socket broke
// without one).
func (t *Tab) CloseStatus() (websocket.StatusCode, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closeCode, t.closeMsg
}

// SetCapacity changes the threads offered and tells the coordinator.
func (t *Tab) SetCapacity(n int) error {
	if n < 0 {
		return errors.New("simtab: negative capacity")
	}
	t.mu.Lock()
	t.capacity = n
	s := t.sess
	t.cond.Broadcast()
	t.mu.Unlock()
	if s == nil {
		return errors.New("simtab: not connected")
	}
	return s.send(map[string]any{"type": "capacity", "capacity": n})
}

func (t *Tab) loop(s *session) {
	defer close(t.done)
	backoff := time.Duration(0)
	for {
		s.serve()
		if t.ctx.Err() != nil || !t.opts.Reconnect {
			return
		}
		for {
			if backoff == 0 {
				backoff = t.opts.ReconnectMin
			} else {
				backoff = min(2*backoff, t.opts.ReconnectMax)
			}
			wait := time.Duration(rand.Int64N(int64(backoff) + 1)) // full jitter
			select {
			case <-t.ctx.Done():
				return
			case <-time.After(wait):
			}
			dctx, cancel := context.WithTimeout(t.ctx, 10*time.Second)
			next, err := t.connect(dctx)
			cancel()
			if err == nil {
				s = next
				backoff = 0
				break
			}
			t.log.Debug("simtab reconnect failed", "err", err)
			if t.ctx.Err() != nil {
				return
			}
		}
	}
}

// session is one connection.
type session struct {
	t         *Tab
	ws        *websocket.Conn
	ctx       context.Context // ends when the socket does
	cancel    context.CancelFunc
	heartbeat time.Duration
	results   chan result

	mu    sync.Mutex
	tasks map[taskKey]context.CancelFunc
	wg    sync.WaitGroup
}

type taskKey struct {
	job   string
	index int
}

type wireTask struct {
	Job       string          `json:"job"`
	Index     int             `json:"index"`
	Token     int             `json:"token"`
	Kind      string          `json:"kind"`
	Input     json.RawMessage `json:"input"`
	TimeoutMS int64           `json:"timeout_ms"`
}

type result struct {
	Job    string          `json:"job"`
	Index  int             `json:"index"`
	Token  int             `json:"token"`
	Output json.RawMessage `json:"output,omitempty"`
	Error  string          `json:"error,omitempty"`
}

type message struct {
	Type        string     `json:"type"`
	WorkerID    string     `json:"worker_id"`
	HeartbeatMS int64      `json:"heartbeat_ms"`
	Tasks       []wireTask `json:"tasks"`
	Reason      string     `json:"reason"`
}

// connect dials, says hello and waits for the welcome.
func (t *Tab) connect(ctx context.Context) (*session, error) {
	ws, _, err := websocket.Dial(ctx, t.url, &websocket.DialOptions{Subprotocols: []string{"tabgrid.v1"}})
	if err != nil {
		return nil, fmt.Errorf("simtab: dial: %w", err)
	}
	ws.SetReadLimit(64 << 20)
	s := &session{t: t, ws: ws, results: make(chan result, resultQueue), tasks: map[taskKey]context.CancelFunc{}}
	s.ctx, s.cancel = context.WithCancel(t.ctx)
	t.mu.Lock()
	capacity := t.capacity
	t.mu.Unlock()
	hello := map[string]any{"type": "hello", "version": 1, "capacity": capacity, "name": t.opts.Name, "client": t.opts.Client}
	if err := s.send(hello); err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("simtab: hello: %w", err)
	}
	_, data, err := ws.Read(ctx)
	if err != nil {
		t.noteClose(err)
		ws.CloseNow()
		return nil, fmt.Errorf("simtab: waiting for welcome: %w", err)
	}
	var m message
	if err := json.Unmarshal(data, &m); err != nil || m.Type != "welcome" || m.WorkerID == "" {
		ws.CloseNow()
		return nil, fmt.Errorf("simtab: expected welcome, got %.100s", data)
	}
	s.heartbeat = time.Duration(m.HeartbeatMS) * time.Millisecond
	if t.opts.Heartbeat > 0 {
		s.heartbeat = t.opts.Heartbeat
	}
	if s.heartbeat <= 0 {
		s.heartbeat = 5 * time.Second
	}
	t.mu.Lock()
	t.workerID = m.WorkerID
	t.sess = s
	t.stats.Connects++
	t.mu.Unlock()
	return s, nil
}

func (s *session) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.write(b)
}

func (s *session) write(b []byte) error {
	ctx, cancel := context.WithTimeout(s.t.ctx, 10*time.Second)
	defer cancel()
	return s.ws.Write(ctx, websocket.MessageText, b)
}

// serve runs the connection until the socket ends or the tab closes.
func (s *session) serve() {
	t := s.t
	defer func() {
		s.cancel()
		s.wg.Wait()
		t.mu.Lock()
		if t.sess == s {
			t.sess = nil
		}
		t.held = 0
		t.mu.Unlock()
	}()
	stop := context.AfterFunc(t.ctx, func() { s.ws.Close(websocket.StatusNormalClosure, "tab closed") })
	defer stop()
	if t.opts.Garbage {
		s.write([]byte(`{"type": "results", "results": [{`))
	}
	if !t.opts.Silent {
		s.wg.Add(1)
		go s.writeLoop()
	}
	for {
		_, data, err := s.ws.Read(context.Background())
		if err != nil {
			t.noteClose(err)
			s.ws.CloseNow()
			return
		}
		var m message
		if err := json.Unmarshal(data, &m); err != nil {
			t.log.Warn("simtab: bad message from coordinator", "err", err)
			continue
		}
		switch m.Type {
		case "tasks":
			s.take(m.Tasks)
		case "cancel":
			for _, tk := range m.Tasks {
				s.cancelTask(taskKey{tk.Job, tk.Index})
			}
		}
	}
}

func (t *Tab) noteClose(err error) {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		t.mu.Lock()
		t.closeCode, t.closeMsg = ce.Code, ce.Reason
		t.mu.Unlock()
	}
}

// take starts the tasks of one tasks message.
func (s *session) take(list []wireTask) {
	t := s.t
	t.received.Add(int64(len(list)))
	t.mu.Lock()
	t.held += len(list)
	t.stats.MaxInFlight = max(t.stats.MaxInFlight, t.held)
	t.mu.Unlock()
	for _, tk := range list {
		if t.opts.Forge {
			forged := json.RawMessage(`{"forged":true}`)
			s.queue(result{Job: tk.Job, Index: tk.Index, Token: tk.Token + 1000, Output: forged}, false)
			s.queue(result{Job: tk.Job + "-forged", Index: tk.Index, Token: 1, Output: forged}, false)
		}
		if t.opts.Silent {
			continue // held, never run
		}
		ctx, cancel := context.WithCancel(s.ctx)
		s.mu.Lock()
		s.tasks[taskKey{tk.Job, tk.Index}] = cancel
		s.mu.Unlock()
		s.wg.Add(1)
		go s.run(ctx, tk)
	}
}

func (s *session) cancelTask(k taskKey) {
	s.mu.Lock()
	cancel, ok := s.tasks[k]
	delete(s.tasks, k)
	s.mu.Unlock()
	if ok {
		cancel()
		s.t.cancelled.Add(1)
		s.t.mu.Lock()
		s.t.held--
		s.t.mu.Unlock()
	}
}

// run runs one task when a thread is free and queues its result, unless
// the task is cancelled first.
func (s *session) run(ctx context.Context, tk wireTask) {
	defer s.wg.Done()
	t := s.t
	if !t.acquire(ctx) {
		return
	}
	defer t.releasePermit()
	if t.opts.Delay > 0 {
		timer := time.NewTimer(t.opts.Delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
	r := result{Job: tk.Job, Index: tk.Index, Token: tk.Token}
	if t.shouldFail(tk) {
		r.Error = "simulated failure of task " + strconv.Itoa(tk.Index)
	} else if kind, ok := tasks.Lookup(tk.Kind); !ok {
		r.Error = "unknown kind " + tk.Kind
	} else if out, err := kind.Run(ctx, tk.Input); err != nil {
		r.Error = err.Error()
	} else {
		r.Output = out
	}
	if ctx.Err() != nil {
		return // cancelled: report nothing
	}
	s.mu.Lock()
	_, mine := s.tasks[taskKey{tk.Job, tk.Index}]
	delete(s.tasks, taskKey{tk.Job, tk.Index})
	s.mu.Unlock()
	if !mine {
		return // cancelled while finishing
	}
	s.queue(r, true)
}

func (t *Tab) shouldFail(tk wireTask) bool {
	for _, i := range t.opts.FailIndex {
		if i == tk.Index && (t.opts.FailTokens == 0 || tk.Token <= t.opts.FailTokens) {
			return true
		}
	}
	return t.opts.FailRate > 0 && rand.Float64() < t.opts.FailRate
}

// queue hands a result to the writer. real is false for forged results,
// which hold no slot.
func (s *session) queue(r result, real bool) {
	if real {
		s.t.mu.Lock()
		s.t.held--
		s.t.mu.Unlock()
	}
	select {
	case s.results <- r:
	case <-s.ctx.Done():
	}
}

func (t *Tab) acquire(ctx context.Context) bool {
	stop := context.AfterFunc(ctx, func() {
		t.mu.Lock()
		t.cond.Broadcast()
		t.mu.Unlock()
	})
	defer stop()
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.running >= t.capacity {
		if ctx.Err() != nil {
			return false
		}
		t.cond.Wait()
	}
	if ctx.Err() != nil {
		return false
	}
	t.running++
	return true
}

func (t *Tab) releasePermit() {
	t.mu.Lock()
	t.running--
	t.cond.Signal()
	t.mu.Unlock()
}

// writeLoop sends results in batches (whatever is ready at once) and a
// heartbeat when there was nothing else to say.
func (s *session) writeLoop() {
	defer s.wg.Done()
	hb := time.NewTicker(s.heartbeat)
	defer hb.Stop()
	var buf bytes.Buffer
	batch := make([]result, 0, 256)
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-hb.C:
			if err := s.write([]byte(`{"type":"heartbeat"}`)); err != nil {
				return
			}
			continue
		case r := <-s.results:
			batch = append(batch[:0], r)
		}
		// Let tasks finishing right now join the batch: fewer, larger
		// messages, as the coordinator prefers.
		for yield := 0; yield < 3 && len(batch) < 1000; yield++ {
			if yield > 0 {
				runtime.Gosched()
			}
		more:
			for len(batch) < 1000 {
				select {
				case r := <-s.results:
					batch = append(batch, r)
				default:
					break more
				}
			}
		}
		buf.Reset()
		buf.WriteString(`{"type":"results","results":`)
		if err := json.NewEncoder(&buf).Encode(batch); err != nil {
			return
		}
		buf.WriteByte('}')
		if err := s.write(buf.Bytes()); err != nil {
			return
		}
		var ok, bad int64
		for _, r := range batch {
			if r.Error != "" {
				bad++
			} else if !bytes.Equal(r.Output, []byte(`{"forged":true}`)) {
				ok++
			}
		}
		s.t.completed.Add(ok)
		s.t.errs.Add(bad)
		hb.Reset(s.heartbeat)
	}
}
