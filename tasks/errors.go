package tasks

import "errors"

// Domain errors. The coordinator turns them into HTTP status codes in one
// place; everyone else checks them with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrInvalidInput  = errors.New("invalid input") // 400: malformed request
	ErrUnprocessable = errors.New("unprocessable") // 422: well-formed but the kind rejects it
	ErrTooLarge      = errors.New("too large")     // 413: over a documented limit
	ErrConflict      = errors.New("conflict")      // 409: the job is not in a state that allows it
	ErrUnavailable   = errors.New("unavailable")   // 503: the store cannot be reached
	ErrNoReference   = errors.New("no Go reference implementation")
)
