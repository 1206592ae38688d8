package coordinator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/tabgrid/tabgrid/store"
)

// conn is one tab's WebSocket. It has three goroutines: the reader (the
// HTTP handler's own), a writer that drains a bounded send queue with a
// write timeout, and a closer that performs the close handshake, so that
// nobody else ever blocks on the tab's socket.
//
// Dispatch state (in-flight tasks) is not here: the dispatcher owns it.
// Here are only the facts other goroutines read through atomics.
type conn struct {
	h           *Hub
	ws          *websocket.Conn
	log         *slog.Logger
	connectedAt time.Time // by the hub's clock, for WorkerInfo
	start       int64     // monotonic nanos since the hub's epoch

	// Set by the reader before the tab is registered; read-only after.
	id     string
	name   string
	client string

	send chan []byte
	quit chan struct{} // closed when the tab is closed: the writer stops, the closer starts

	mu      sync.Mutex
	state   connState
	closed  bool
	code    websocket.StatusCode // 0: the socket is already gone, nothing to send
	reason  string
	requeue string // the reason its tasks go back to pending (metrics)

	isClosed  atomic.Bool
	helloDone atomic.Bool
	handing   atomic.Bool  // the reader is waiting for the dispatcher
	lastHeard atomic.Int64 // monotonic nanos since the hub's epoch
	capacity  atomic.Int32
	inFlight  atomic.Int32 // written by the dispatcher
	completed atomic.Int64 // accepted results
	failed    atomic.Int64 // error results and timeouts

	// Owned by the registry loop, for WorkerInfo.Rate.
	rateCompleted int64
	rateAt        time.Time
	rate          atomic.Uint64 // float64 bits

	wg sync.WaitGroup // writer, and closer once closing
}

type connState int

const (
	stateNew         connState = iota // no hello yet: nothing in the store
	stateRegistering                  // hello received, RenewWorkers in progress
	stateRegistered                   // in the store: its close must release and remove it
)

// ServeHTTP is the /ws endpoint: it accepts the WebSocket and serves the
// tab until its socket closes.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.connStarting() {
		http.Error(w, "coordinator shutting down", http.StatusServiceUnavailable)
		return
	}
	defer h.connWG.Done()
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{Subprotocol}})
	if err != nil {
		// Accept has written the HTTP error.
		h.log.Debug("websocket accept", "err", err, "remote", r.RemoteAddr)
		return
	}
	if ws.Subprotocol() != Subprotocol {
		ws.Close(websocket.StatusPolicyViolation, "subprotocol "+Subprotocol+" required")
		return
	}
	ws.SetReadLimit(h.cfg.MaxMessageBytes)
	c := &conn{
		h:           h,
		ws:          ws,
		log:         h.log.With("remote", r.RemoteAddr),
		connectedAt: h.now(),
		start:       h.mono(),
		send:        make(chan []byte, h.cfg.SendQueue),
		quit:        make(chan struct{}),
	}
	c.lastHeard.Store(c.start)
	if !h.addConn(c) {
		ws.Close(websocket.StatusGoingAway, "going away")
		return
	}
	defer h.removeConn(c)
	c.wg.Add(1)
	go c.writeLoop()
	err = c.readLoop()
	var pe *protocolError
	switch {
	case errors.As(err, &pe):
		c.logger().Info("tab refused", "code", int(pe.code), "reason", pe.reason)
		c.closeWith(pe.code, pe.reason, requeueClosed)
	case err != nil:
		// The peer closed, or the socket broke, or we closed it.
		c.logger().Debug("tab socket ended", "err", err)
		c.closeWith(0, "", requeueClosed)
	}
	c.wg.Wait()
}

// readLoop reads messages until the socket ends or the tab breaks the
// protocol. Reads have no deadline: the hub's watchdog closes silent tabs
// (a read deadline in coder/websocket would drop the socket without a
// close code).
func (c *conn) readLoop() error {
	var buf bytes.Buffer
	for {
		typ, r, err := c.ws.Reader(context.Background())
		if err != nil {
			return err
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return err
		}
		c.lastHeard.Store(c.h.mono())
		if c.isClosed.Load() {
			continue // closing: the handshake ends the socket soon
		}
		if typ != websocket.MessageText {
			return malformed("binary message")
		}
		m, perr := parseMessage(buf.Bytes(), c.helloDone.Load(), c.h.cfg.MaxCapacity)
		if buf.Cap() > 64<<10 {
			buf = bytes.Buffer{} // do not keep a rare large message's buffer per tab
		}
		if perr != nil {
			return perr
		}
		switch m.Type {
		case "hello":
			if err := c.hello(m); err != nil {
				return err
			}
		case "capacity":
			if !c.toDispatcher(tabEvent{kind: evCapacity, c: c, capacity: *m.Capacity}) {
				return errConnClosed
			}
		case "results":
			if len(m.Results) > 0 && !c.toDispatcher(tabEvent{kind: evResults, c: c, results: m.Results}) {
				return errConnClosed
			}
		}
	}
}

var errConnClosed = errors.New("connection closed")

// toDispatcher hands an event to the dispatcher, waiting while it is
// busy (which slows this tab's reading: backpressure), unless the tab
// closes meanwhile.
func (c *conn) toDispatcher(ev tabEvent) bool {
	select {
	case c.h.events <- ev:
		return true
	default:
	}
	// While the reader waits here it reads nothing, heartbeats included:
	// the watchdog must not take that for silence.
	c.handing.Store(true)
	defer func() {
		c.lastHeard.Store(c.h.mono())
		c.handing.Store(false)
	}()
	select {
	case c.h.events <- ev:
		return true
	case <-c.quit:
		return false
	}
}

// hello registers the tab in the store before anything can be claimed
// for it, then welcomes it.
func (c *conn) hello(m inMessage) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errConnClosed
	}
	c.state = stateRegistering
	// Written under mu: whoever sees the tab registered (under mu) sees these.
	c.id = "t-" + randomID(8)
	c.name = m.Name
	c.client = m.Client
	c.log = c.log.With("worker", c.id)
	c.mu.Unlock()
	c.capacity.Store(int32(*m.Capacity))
	c.helloDone.Store(true)

	ctx, cancel := context.WithTimeout(context.Background(), c.h.cfg.WriteTimeout)
	err := c.h.reg.register(ctx, c.info(c.h.now()))
	cancel()

	// From here the store may know the tab (even when the call failed
	// after Redis applied it), so its close must release and remove it.
	c.mu.Lock()
	c.state = stateRegistered
	closed := c.closed
	c.mu.Unlock()
	if closed {
		c.h.tabGone(c)
		return errConnClosed
	}
	if err != nil {
		c.h.logStoreError(opRenew, err)
		return &protocolError{code: websocket.StatusTryAgainLater, reason: "store unavailable, try again later"}
	}
	welcome, _ := json.Marshal(welcomeMessage{
		Type:            "welcome",
		Version:         ProtocolVersion,
		WorkerID:        c.id,
		Coordinator:     c.h.id,
		HeartbeatMS:     (c.h.cfg.HeartbeatTimeout / 3).Milliseconds(),
		Prefetch:        c.h.cfg.Prefetch,
		MaxMessageBytes: c.h.cfg.MaxMessageBytes,
	})
	// The welcome is queued before the dispatcher hears of the tab, so
	// it is always the first message the tab reads.
	if !c.enqueue(welcome) {
		return errConnClosed
	}
	if !c.toDispatcher(tabEvent{kind: evHello, c: c, capacity: *m.Capacity}) {
		return errConnClosed
	}
	c.logger().Info("tab connected", "name", c.name, "client", c.client, "capacity", *m.Capacity)
	c.h.pub.workerEvent("connected", c.info(c.h.now()))
	return nil
}

// enqueue queues a message for the writer without ever blocking: a tab
// whose queue is full is too slow and is closed.
func (c *conn) enqueue(msg []byte) bool {
	select {
	case c.send <- msg:
		return true
	case <-c.quit:
		return false
	default:
		c.closeWith(closeTooSlow, "too slow", requeueClosed)
		return false
	}
}

func (c *conn) writeLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.quit:
			return
		case msg := <-c.send:
			ctx, cancel := context.WithTimeout(context.Background(), c.h.cfg.WriteTimeout)
			err := c.ws.Write(ctx, websocket.MessageText, msg)
			timedOut := ctx.Err() != nil
			cancel()
			if err != nil {
				if timedOut {
					// coder/websocket has already dropped the socket.
					c.logger().Info("tab too slow: write timed out")
					c.closeWith(0, "too slow", requeueClosed)
				} else {
					c.closeWith(0, "", requeueClosed)
				}
				return
			}
		}
	}
}

// closer performs the close handshake; it can take seconds with an
// unresponsive peer, which is why nobody else waits for it. closeWith
// starts it, so an idle tab costs two goroutines, not three (a goroutine
// stack is a good part of an idle tab's memory).
func (c *conn) closer() {
	defer c.wg.Done()
	c.mu.Lock()
	code, reason := c.code, c.reason
	c.mu.Unlock()
	if code == 0 {
		c.ws.CloseNow()
		return
	}
	c.ws.Close(code, reason)
}

// closeWith closes the tab (once): it stops its writer, starts the close
// handshake and, if the tab is registered, tells the dispatcher at once,
// which stops claiming for it and has its tasks released. code 0 means the
// socket is already gone. requeue names the reason for metrics.
func (c *conn) closeWith(code websocket.StatusCode, reason, requeue string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.code, c.reason, c.requeue = code, clip(reason, 120), requeue
	st := c.state
	log := c.log
	// Added under the lock that marks the tab closed: ServeHTTP's own
	// closeWith sees closed only after this, so its Wait counts the closer.
	c.wg.Add(1)
	c.mu.Unlock()
	c.isClosed.Store(true)
	close(c.quit)
	go c.closer()
	if code != 0 {
		log.Info("closing tab", "code", int(code), "reason", reason)
	}
	if st == stateRegistered {
		c.h.tabGone(c)
	}
	// stateRegistering: hello() sees closed and reports the tab gone
	// itself, after the store call, so removal never precedes it.
}

func (c *conn) logger() *slog.Logger {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log
}

// registered reports whether the tab is in the store's registry.
func (c *conn) registered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stateRegistered && !c.closed
}

func (c *conn) requeueReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.requeue == "" {
		return requeueClosed
	}
	return c.requeue
}

// info describes the tab for the store's worker registry.
func (c *conn) info(now time.Time) store.WorkerInfo {
	lastHeard := c.lastHeard.Load()
	return store.WorkerInfo{
		ID:          c.id,
		Name:        c.name,
		Capacity:    int(c.capacity.Load()),
		InFlight:    int(c.inFlight.Load()),
		Completed:   c.completed.Load(),
		Failed:      c.failed.Load(),
		ConnectedAt: c.connectedAt,
		LastSeen:    now.Add(-time.Duration(c.h.mono() - lastHeard)),
		Coordinator: c.h.id,
		Rate:        math.Float64frombits(c.rate.Load()),
	}
}

func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
