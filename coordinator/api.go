package coordinator

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/tasks"
	"github.com/tabgrid/tabgrid/webclient"
)

// Route is one registered API route, for the OpenAPI drift test.
type Route struct {
	Method string
	Path   string
}

// Routes lists the routes the server registers (echo's :param form).
func (s *Server) Routes() []Route {
	var rs []Route
	for _, r := range s.echo.Routes() {
		if r.Method == echo.RouteNotFound || strings.HasSuffix(r.Path, "*") {
			continue
		}
		rs = append(rs, Route{Method: r.Method, Path: r.Path})
	}
	return rs
}

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.errorHandler

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})))
	e.GET("/ws", echo.WrapHandler(s.hub))

	api := e.Group("/api/v1")
	api.POST("/jobs", s.createJob, s.auth)
	api.GET("/jobs", s.listJobs)
	api.GET("/jobs/:id", s.getJob)
	api.DELETE("/jobs/:id", s.cancelJob, s.auth)
	api.GET("/jobs/:id/result", s.jobResult)
	api.GET("/jobs/:id/result.png", s.jobResultPNG)
	api.GET("/jobs/:id/tasks", s.listTasks)
	api.GET("/workers", s.listWorkers)
	api.GET("/stats", s.stats)
	api.GET("/events", s.streamEvents)
	api.GET("/openapi.json", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/json", OpenAPI)
	})
	api.RouteNotFound("/*", func(c echo.Context) error {
		return echo.NewHTTPError(http.StatusNotFound, "no such API route: "+c.Request().Method+" "+c.Request().URL.Path)
	})

	static := echo.WrapHandler(webclient.Handler())
	e.GET("/*", static)
	e.HEAD("/*", static)
	return e
}

// auth guards mutating calls with a bearer token, compared in constant
// time.
func (s *Server) auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || tok == "" {
			return fmt.Errorf("%w: send Authorization: Bearer <token>", errUnauthorized)
		}
		for _, want := range s.tokens {
			if subtle.ConstantTimeCompare([]byte(tok), want) == 1 {
				return next(c)
			}
		}
		return fmt.Errorf("%w: the token is not valid", errUnauthorized)
	}
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	if !s.ready.Load() {
		return fmt.Errorf("%w: shutting down", tasks.ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		return fmt.Errorf("%w: store: %v", tasks.ErrUnavailable, err)
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

const maxIdempotencyKey = 200

func (s *Server) createJob(c echo.Context) error {
	wait, err := s.parseWait(c)
	if err != nil {
		return err
	}
	key := c.Request().Header.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey {
		return fmt.Errorf("%w: Idempotency-Key is longer than %d bytes", tasks.ErrInvalidInput, maxIdempotencyKey)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("%w: the request body is over %d bytes", tasks.ErrTooLarge, s.cfg.MaxBodyBytes)
		}
		return fmt.Errorf("%w: read body: %v", tasks.ErrInvalidInput, err)
	}
	spec, err := tasks.ParseSpec(body, s.cfg.Limits)
	if err != nil {
		return err
	}
	inputs, err := spec.SplitTasks(s.cfg.Limits)
	if err != nil {
		return err
	}
	job := tasks.Job{
		ID:          newJobID(),
		Name:        spec.Name,
		Kind:        spec.Kind,
		State:       tasks.JobQueued,
		Priority:    spec.Priority,
		MaxAttempts: spec.MaxAttempts,
		TaskTimeout: spec.TaskTimeout,
		CreatedAt:   time.Now().UTC(),
		Input:       spec.Input,
	}
	if job.Name == "" {
		job.Name = job.Kind + "-" + job.ID[len(job.ID)-6:]
	}
	job, created, err := s.store.CreateJob(c.Request().Context(), store.NewJob{Job: job, Inputs: inputs, IdempotencyKey: key})
	if err != nil {
		return fmt.Errorf("create job: %w", err)
	}
	status := http.StatusOK // a repeated Idempotency-Key answers with the first job
	if created {
		status = http.StatusCreated
		// This coordinator's tabs start at once; the event wakes the others.
		s.hub.workAvailable()
		s.publishRaw(c.Request().Context(), "work", workEventData(job.ID, s.hub.ID()))
		s.publish(c.Request().Context(), "job", job)
	}
	if wait > 0 {
		job, err = s.waitJob(c.Request().Context(), job.ID, wait, true)
		if err != nil {
			return err
		}
	}
	return c.JSON(status, job)
}

func (s *Server) publish(ctx context.Context, typ string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encode event", "type", typ, "err", err)
		return
	}
	s.publishRaw(ctx, typ, data)
}

func (s *Server) publishRaw(ctx context.Context, typ string, data json.RawMessage) {
	// Events only make things faster (wake-ups, dashboards); a failed
	// publish loses nothing, so it is logged and not returned.
	if err := s.store.Publish(ctx, store.Event{Type: typ, Data: data}); err != nil {
		s.log.Warn("publish event", "type", typ, "err", err)
	}
}

func (s *Server) parseWait(c echo.Context) (time.Duration, error) {
	v := c.QueryParam("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		if n, err2 := strconv.Atoi(v); err2 == nil {
			d, err = time.Duration(n)*time.Second, nil
		}
	}
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%w: wait must be a duration such as 30s", tasks.ErrInvalidInput)
	}
	if d > s.cfg.MaxWait {
		return 0, fmt.Errorf("%w: wait is longer than the limit %s", tasks.ErrInvalidInput, s.cfg.MaxWait)
	}
	return d, nil
}

// waitJob returns the job once it is final or the wait runs out. It
// listens to job events and also re-reads the job every second, since
// events are best effort.
func (s *Server) waitJob(ctx context.Context, id string, wait time.Duration, withResult bool) (tasks.Job, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	done := s.events.waitFor(id)
	defer s.events.stopWaiting(id, done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		job, err := s.store.GetJob(context.WithoutCancel(ctx), id)
		if err != nil {
			return job, err
		}
		if job.State.Final() || ctx.Err() != nil {
			if withResult && job.State == tasks.JobSucceeded {
				res, err := s.store.JobResult(context.WithoutCancel(ctx), id)
				if err != nil {
					return job, err
				}
				job.Result = res
			}
			return job, nil
		}
		select {
		case <-ctx.Done():
		case <-s.ctx.Done():
			cancel()
		case <-done:
		case <-tick.C:
		}
	}
}

func (s *Server) listJobs(c echo.Context) error {
	f := store.JobFilter{State: tasks.JobState(c.QueryParam("state"))}
	if f.State != "" && !f.State.Valid() {
		return fmt.Errorf("%w: unknown state %q", tasks.ErrInvalidInput, f.State)
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return fmt.Errorf("%w: limit must be between 1 and 1000", tasks.ErrInvalidInput)
		}
		f.Limit = n
	}
	jobs, err := s.store.ListJobs(c.Request().Context(), f)
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	if jobs == nil {
		jobs = []tasks.Job{}
	}
	return c.JSON(http.StatusOK, map[string]any{"jobs": jobs})
}

func (s *Server) getJob(c echo.Context) error {
	wait, err := s.parseWait(c)
	if err != nil {
		return err
	}
	id := c.Param("id")
	if wait > 0 {
		job, err := s.waitJob(c.Request().Context(), id, wait, false)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, job)
	}
	job, err := s.store.GetJob(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, job)
}

func (s *Server) cancelJob(c echo.Context) error {
	job, err := s.store.CancelJob(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	s.publish(c.Request().Context(), "cancel", map[string]string{"job": job.ID})
	s.publish(c.Request().Context(), "job", job)
	return c.JSON(http.StatusOK, job)
}

func (s *Server) jobResult(c echo.Context) error {
	ctx := c.Request().Context()
	res, err := s.store.JobResult(ctx, c.Param("id"))
	if err != nil {
		if errors.Is(err, tasks.ErrConflict) {
			if job, gerr := s.store.GetJob(ctx, c.Param("id")); gerr == nil {
				return &stateError{state: job.State, err: fmt.Errorf("%w: job is %s", tasks.ErrConflict, job.State)}
			}
		}
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, res)
}

// jobResultPNG renders a mandelbrot job's image from its task outputs.
// While the job runs it shows the tiles finished so far, so a dashboard
// can watch the image fill in.
func (s *Server) jobResultPNG(c echo.Context) error {
	ctx := c.Request().Context()
	job, err := s.store.GetJob(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	if job.Kind != "mandelbrot" {
		return fmt.Errorf("%w: job %s is of kind %s, which has no image", tasks.ErrNotFound, job.ID, job.Kind)
	}
	outputs, err := s.store.TaskOutputs(ctx, job.ID)
	if err != nil {
		return err
	}
	png, err := tasks.MandelbrotPNG(job.Input, outputs)
	if err != nil {
		return fmt.Errorf("render image: %w", err)
	}
	if !job.State.Final() {
		c.Response().Header().Set("Cache-Control", "no-store")
	}
	return c.Blob(http.StatusOK, "image/png", png)
}

func (s *Server) listTasks(c echo.Context) error {
	state := tasks.TaskState(c.QueryParam("state"))
	if state != "" && !state.Valid() {
		return fmt.Errorf("%w: unknown task state %q", tasks.ErrInvalidInput, state)
	}
	ts, err := s.store.ListTasks(c.Request().Context(), c.Param("id"), state)
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []tasks.Task{}
	}
	return c.JSON(http.StatusOK, map[string]any{"tasks": ts})
}

func (s *Server) listWorkers(c echo.Context) error {
	ws, err := s.store.ListWorkers(c.Request().Context())
	if err != nil {
		return fmt.Errorf("list workers: %w", err)
	}
	if ws == nil {
		ws = []store.WorkerInfo{}
	}
	return c.JSON(http.StatusOK, map[string]any{"workers": ws})
}

// Stats are the grid's totals across every coordinator on the store.
type Stats struct {
	Tabs           int                    `json:"tabs"`
	Capacity       int                    `json:"capacity"`
	InFlight       int                    `json:"in_flight"`
	Coordinators   int                    `json:"coordinators"`
	Jobs           map[tasks.JobState]int `json:"jobs"`
	TasksPerSecond float64                `json:"tasks_per_second"`
}

func (s *Server) stats(c echo.Context) error {
	st, err := s.gridStats(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func (s *Server) gridStats(ctx context.Context) (Stats, error) {
	ws, err := s.store.ListWorkers(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("list workers: %w", err)
	}
	counts, err := s.store.CountJobs(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("count jobs: %w", err)
	}
	return statsOf(ws, counts), nil
}

func statsOf(ws []store.WorkerInfo, counts map[tasks.JobState]int) Stats {
	st := Stats{Jobs: map[tasks.JobState]int{}}
	for _, s := range []tasks.JobState{tasks.JobQueued, tasks.JobRunning, tasks.JobSucceeded, tasks.JobFailed, tasks.JobCancelled} {
		st.Jobs[s] = counts[s]
	}
	coords := map[string]bool{}
	for _, w := range ws {
		st.Tabs++
		st.Capacity += w.Capacity
		st.InFlight += w.InFlight
		st.TasksPerSecond += w.Rate
		coords[w.Coordinator] = true
	}
	st.Coordinators = len(coords)
	return st
}

// newJobID makes an id that sorts by creation time and is safe in URLs
// and Redis hash tags: 10 base32 characters of milliseconds, 8 random.
func newJobID() string {
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	var b [18]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = alphabet[ms&31]
		ms >>= 5
	}
	var r [8]byte
	rand.Read(r[:])
	for i, v := range r {
		b[10+i] = alphabet[v&31]
	}
	return string(b[:])
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
