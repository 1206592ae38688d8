package coordinator

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/tabgrid/tabgrid/tasks"
)

// apiError is the JSON error body of every failed API call:
// {"error": {"code": "invalid_input", "message": "..."}}.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		State   string `json:"state,omitempty"`
	} `json:"error"`
}

var errUnauthorized = errors.New("unauthorized")

// statusOf is the one place where domain errors become HTTP statuses.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, tasks.ErrInvalidInput):
		return http.StatusBadRequest, "invalid_input"
	case errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, tasks.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, tasks.ErrConflict):
		return http.StatusConflict, "conflict"
	case errors.Is(err, tasks.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, tasks.ErrUnprocessable):
		return http.StatusUnprocessableEntity, "unprocessable"
	case errors.Is(err, tasks.ErrUnavailable):
		return http.StatusServiceUnavailable, "unavailable"
	}
	return http.StatusInternalServerError, "internal"
}

// errorHandler answers every error returned by a handler, and echo's own
// (unknown route, wrong method), with the JSON error body.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var body apiError
	status := http.StatusInternalServerError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &he):
		status = he.Code
		body.Error.Code = http.StatusText(he.Code)
		body.Error.Message = http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok {
			body.Error.Message = m
		}
		switch status {
		case http.StatusNotFound:
			body.Error.Code = "not_found"
		case http.StatusMethodNotAllowed:
			body.Error.Code = "method_not_allowed"
		case http.StatusRequestEntityTooLarge:
			body.Error.Code = "too_large"
		}
	default:
		status, body.Error.Code = statusOf(err)
		body.Error.Message = err.Error()
		var se *stateError
		if errors.As(err, &se) {
			body.Error.State = string(se.state)
		}
	}
	if status >= 500 && status != http.StatusServiceUnavailable {
		s.log.Error("api", "method", c.Request().Method, "path", c.Path(), "err", err)
		body.Error.Message = "internal error"
	}
	if status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="tabgrid"`)
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(status)
		return
	}
	c.JSON(status, body)
}

// stateError is a conflict that names the job's state, so a client asking
// for a result too early can tell "still running" from "failed".
type stateError struct {
	state tasks.JobState
	err   error
}

func (e *stateError) Error() string { return e.err.Error() }
func (e *stateError) Unwrap() error { return e.err }
