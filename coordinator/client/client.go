// Package client is a small Go client for tabgrid's REST API (/api/v1),
// used by the tabgrid CLI and by tests. It speaks HTTP only: it imports
// tasks for the domain types and nothing else of tabgrid's, so a program
// can submit jobs without linking the coordinator.
//
// A Client is safe for concurrent use. Every method takes a context that
// bounds the whole call, including ?wait= holds on the server.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tabgrid/tabgrid/tasks"
)

// DefaultServer is the coordinator address the CLI uses when none is given.
const DefaultServer = "http://127.0.0.1:8080"

// maxErrorBody bounds how much of a failed answer is read into an Error,
// so a proxy's large HTML page cannot flood a log.
const maxErrorBody = 64 << 10

// minPoll is the shortest interval between two polls of Wait.
const minPoll = 200 * time.Millisecond

// Client calls one coordinator (or a load balancer in front of several).
type Client struct {
	base      string // "http://host:8080", no trailing slash
	token     string
	hc        *http.Client
	userAgent string
}

// Option changes a Client at construction.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (transport, proxies, TLS). Leave its
// Timeout at zero when using Wait: a wait holds the request open on the
// server, and the context already bounds every call.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// New returns a client for the coordinator at baseURL
// ("http://127.0.0.1:8080"; a trailing "/api/v1" is accepted too). token
// is the bearer token for mutating calls; read-only calls work without
// one. A malformed baseURL shows up as an error on the first call.
func New(baseURL, token string, opts ...Option) *Client {
	base := strings.TrimRight(strings.TrimSpace(baseURL), "/")
	base = strings.TrimSuffix(base, "/api/v1")
	c := &Client{base: base, token: token, hc: http.DefaultClient, userAgent: "tabgrid-client/1"}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL is the coordinator's address as the client uses it.
func (c *Client) BaseURL() string { return c.base }

// Error is an API error: the HTTP status and the body's
// {"error": {"code", "message", "state"}}. Errors.Is matches it against
// the tasks sentinel of its status (tasks.ErrNotFound for 404, ...).
type Error struct {
	Status  int    // HTTP status code
	Code    string // "invalid_input", "not_found", ...; "http_502" when the body was not an API error
	Message string
	State   tasks.JobState // the job's state, for a 409 from Result
}

func (e *Error) Error() string {
	// The coordinator's messages usually start with the code already
	// ("unprocessable: sleep input: ..."); say it once.
	if strings.HasPrefix(e.Message, e.Code) {
		return fmt.Sprintf("%d %s", e.Status, e.Message)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// Is lets callers write errors.Is(err, tasks.ErrNotFound) whether the
// error came from the coordinator in process or over HTTP.
func (e *Error) Is(target error) bool {
	switch target {
	case tasks.ErrInvalidInput:
		return e.Status == http.StatusBadRequest
	case tasks.ErrNotFound:
		return e.Status == http.StatusNotFound
	case tasks.ErrConflict:
		return e.Status == http.StatusConflict
	case tasks.ErrTooLarge:
		return e.Status == http.StatusRequestEntityTooLarge
	case tasks.ErrUnprocessable:
		return e.Status == http.StatusUnprocessableEntity
	case tasks.ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable
	}
	return false
}

// Worker is one connected tab, as GET /workers lists it.
type Worker struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Capacity       int       `json:"capacity"`
	InFlight       int       `json:"in_flight"`
	Completed      int64     `json:"completed"`
	Failed         int64     `json:"failed"`
	ConnectedAt    time.Time `json:"connected_at"`
	LastSeen       time.Time `json:"last_seen"`
	Coordinator    string    `json:"coordinator"`
	TasksPerSecond float64   `json:"tasks_per_second"`
}

// Stats are the grid's totals, as GET /stats answers.
type Stats struct {
	Tabs           int                    `json:"tabs"`
	Capacity       int                    `json:"capacity"`
	InFlight       int                    `json:"in_flight"`
	Coordinators   int                    `json:"coordinators"`
	Jobs           map[tasks.JobState]int `json:"jobs"`
	TasksPerSecond float64                `json:"tasks_per_second"`
}

// SubmitOptions are the optional parts of a submission.
type SubmitOptions struct {
	// Wait > 0 holds the answer until the job ends or Wait passes; the
	// job then carries Result when it succeeded.
	Wait time.Duration
	// IdempotencyKey makes a retried submission return the first job
	// instead of creating another.
	IdempotencyKey string
}

// Submit posts a job. Without Wait it returns as soon as the job is
// stored (state queued).
func (c *Client) Submit(ctx context.Context, spec tasks.Spec, opts SubmitOptions) (tasks.Job, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return tasks.Job{}, fmt.Errorf("encode spec: %w", err)
	}
	q := url.Values{}
	if opts.Wait > 0 {
		q.Set("wait", opts.Wait.String())
	}
	hdr := http.Header{}
	if opts.IdempotencyKey != "" {
		hdr.Set("Idempotency-Key", opts.IdempotencyKey)
	}
	var job tasks.Job
	err = c.doJSON(ctx, http.MethodPost, "/jobs", q, hdr, body, &job)
	return job, err
}

// Job returns one job. With wait > 0 the server answers as soon as the
// job ends or wait passes.
func (c *Client) Job(ctx context.Context, id string, wait time.Duration) (tasks.Job, error) {
	q := url.Values{}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var job tasks.Job
	err := c.doJSON(ctx, http.MethodGet, "/jobs/"+url.PathEscape(id), q, nil, nil, &job)
	return job, err
}

// Jobs lists jobs newest first; state "" means any, limit 0 the server's
// default (50).
func (c *Client) Jobs(ctx context.Context, state tasks.JobState, limit int) ([]tasks.Job, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", string(state))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Jobs []tasks.Job `json:"jobs"`
	}
	err := c.doJSON(ctx, http.MethodGet, "/jobs", q, nil, nil, &out)
	return out.Jobs, err
}

// Tasks lists a job's tasks in index order; state "" means all.
func (c *Client) Tasks(ctx context.Context, id string, state tasks.TaskState) ([]tasks.Task, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", string(state))
	}
	var out struct {
		Tasks []tasks.Task `json:"tasks"`
	}
	if err := c.doJSON(ctx, http.MethodGet, "/jobs/"+url.PathEscape(id)+"/tasks", q, nil, nil, &out); err != nil {
		return nil, err
	}
	for i := range out.Tasks {
		out.Tasks[i].JobID = id
	}
	return out.Tasks, nil
}

// Result returns the reduced result of a succeeded job. For a job in any
// other state it returns an *Error with Status 409 and State set.
func (c *Client) Result(ctx context.Context, id string) (json.RawMessage, error) {
	b, err := c.do(ctx, http.MethodGet, "/jobs/"+url.PathEscape(id)+"/result", nil, nil, nil)
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("result of job %s: not JSON", id)
	}
	return json.RawMessage(b), nil
}

// ResultPNG returns the image of a mandelbrot job (the tiles done so far
// while it runs).
func (c *Client) ResultPNG(ctx context.Context, id string) ([]byte, error) {
	return c.do(ctx, http.MethodGet, "/jobs/"+url.PathEscape(id)+"/result.png", nil, nil, nil)
}

// Cancel cancels a job that has not ended and returns it.
func (c *Client) Cancel(ctx context.Context, id string) (tasks.Job, error) {
	var job tasks.Job
	err := c.doJSON(ctx, http.MethodDelete, "/jobs/"+url.PathEscape(id), nil, nil, nil, &job)
	return job, err
}

// Workers lists the connected tabs across every coordinator.
func (c *Client) Workers(ctx context.Context) ([]Worker, error) {
	var out struct {
		Workers []Worker `json:"workers"`
	}
	err := c.doJSON(ctx, http.MethodGet, "/workers", nil, nil, nil, &out)
	return out.Workers, err
}

// Stats returns the grid's totals.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := c.doJSON(ctx, http.MethodGet, "/stats", nil, nil, nil, &st)
	return st, err
}

// Wait polls the job with server-side waits of at most poll until it is
// final or ctx ends, calling progress (if not nil) with every answer. It
// returns the final job, with Result filled when it succeeded.
func (c *Client) Wait(ctx context.Context, id string, poll time.Duration, progress func(tasks.Job)) (tasks.Job, error) {
	if poll <= 0 {
		poll = time.Second
	}
	for {
		start := time.Now()
		job, err := c.Job(ctx, id, poll)
		if err != nil {
			return job, err
		}
		if progress != nil {
			progress(job)
		}
		if job.State.Final() {
			if job.State == tasks.JobSucceeded && job.Result == nil {
				if job.Result, err = c.Result(ctx, id); err != nil {
					return job, err
				}
			}
			return job, nil
		}
		// The server holds the request for up to poll; a server or proxy
		// that answers at once must not make this loop spin.
		if d := time.Since(start); d < minPoll {
			t := time.NewTimer(minPoll - d)
			select {
			case <-ctx.Done():
				t.Stop()
				return job, ctx.Err()
			case <-t.C:
			}
		}
	}
}

func (c *Client) doJSON(ctx context.Context, method, path string, q url.Values, hdr http.Header, body []byte, out any) error {
	b, err := c.do(ctx, method, path, q, hdr, body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// do sends one request and returns the body of a 2xx answer, or an
// *Error built from any other.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, hdr http.Header, body []byte) ([]byte, error) {
	u := c.base + "/api/v1" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err // a *url.Error, which names the method and URL
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
		}
		return b, nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return nil, errorFrom(resp.StatusCode, b)
}

// errorFrom builds an *Error from a failed answer, whether or not its
// body is the API's error object (a proxy may answer 502 with HTML).
func errorFrom(status int, body []byte) *Error {
	var api struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			State   string `json:"state"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &api); err == nil && api.Error.Code != "" {
		return &Error{Status: status, Code: api.Error.Code, Message: api.Error.Message, State: tasks.JobState(api.Error.State)}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &Error{Status: status, Code: "http_" + strconv.Itoa(status), Message: msg}
}
