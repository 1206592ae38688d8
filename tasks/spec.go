package tasks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Limits bound what one job may ask for. All are configurable on the
// coordinator; DefaultLimits documents the defaults.
type Limits struct {
	MaxTasks       int           // tasks per job
	MaxInputBytes  int           // bytes of one job's input JSON
	MaxTaskBytes   int           // bytes of one task's input JSON after splitting
	MaxJSItems     int           // items of a js job
	MaxAttempts    int           // upper bound for max_attempts
	MaxTaskTimeout time.Duration // upper bound for task_timeout
	MaxNameLen     int
}

// DefaultLimits are the limits when none are configured.
func DefaultLimits() Limits {
	return Limits{
		MaxTasks:       100_000,
		MaxInputBytes:  8 << 20,
		MaxTaskBytes:   256 << 10,
		MaxJSItems:     100_000,
		MaxAttempts:    10,
		MaxTaskTimeout: time.Hour,
		MaxNameLen:     200,
	}
}

// Defaults for optional job fields.
const (
	DefaultMaxAttempts = 3
	DefaultTaskTimeout = 60 * time.Second
)

// Spec is a job as submitted: the body of POST /api/v1/jobs.
type Spec struct {
	Kind        string          `json:"kind"`
	Input       json.RawMessage `json:"input"`
	Split       *SplitHint      `json:"split,omitempty"`
	Name        string          `json:"name,omitempty"`
	Priority    int             `json:"priority,omitempty"`
	MaxAttempts int             `json:"max_attempts,omitempty"`
	TaskTimeout Duration        `json:"task_timeout,omitempty"`
}

// SplitHint asks for a number of tasks.
type SplitHint struct {
	Tasks int `json:"tasks"`
}

// ParseSpec decodes and validates a job spec. Unknown fields are an error
// so that a misspelt option is not silently ignored.
func ParseSpec(body []byte, lim Limits) (Spec, error) {
	var s Spec
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("%w: job spec: %v", ErrInvalidInput, err)
	}
	if dec.More() {
		return s, fmt.Errorf("%w: job spec: trailing data after the JSON object", ErrInvalidInput)
	}
	return s, s.Validate(lim)
}

// Validate checks the fields that do not depend on the kind's input.
func (s *Spec) Validate(lim Limits) error {
	if s.Kind == "" {
		return fmt.Errorf("%w: kind is required (one of %s)", ErrInvalidInput, strings.Join(KindNames(), ", "))
	}
	if _, ok := Lookup(s.Kind); !ok {
		return fmt.Errorf("%w: unknown kind %q (one of %s)", ErrUnprocessable, s.Kind, strings.Join(KindNames(), ", "))
	}
	if len(bytes.TrimSpace(s.Input)) == 0 || bytes.Equal(bytes.TrimSpace(s.Input), []byte("null")) {
		return fmt.Errorf("%w: input is required", ErrInvalidInput)
	}
	if len(s.Input) > lim.MaxInputBytes {
		return fmt.Errorf("%w: input is %d bytes, the limit is %d", ErrTooLarge, len(s.Input), lim.MaxInputBytes)
	}
	if len(s.Name) > lim.MaxNameLen {
		return fmt.Errorf("%w: name is longer than %d bytes", ErrInvalidInput, lim.MaxNameLen)
	}
	if s.Split != nil && (s.Split.Tasks < 1 || s.Split.Tasks > lim.MaxTasks) {
		return fmt.Errorf("%w: split.tasks must be between 1 and %d", ErrUnprocessable, lim.MaxTasks)
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	if s.MaxAttempts < 1 || s.MaxAttempts > lim.MaxAttempts {
		return fmt.Errorf("%w: max_attempts must be between 1 and %d", ErrUnprocessable, lim.MaxAttempts)
	}
	if s.TaskTimeout == 0 {
		s.TaskTimeout = Duration(DefaultTaskTimeout)
	}
	if d := time.Duration(s.TaskTimeout); d < 10*time.Millisecond || d > lim.MaxTaskTimeout {
		return fmt.Errorf("%w: task_timeout must be between 10ms and %s", ErrUnprocessable, lim.MaxTaskTimeout)
	}
	return nil
}

// SplitTasks runs the kind's splitter and checks the documented limits on
// its output.
func (s *Spec) SplitTasks(lim Limits) ([]json.RawMessage, error) {
	k, ok := Lookup(s.Kind)
	if !ok {
		return nil, fmt.Errorf("%w: unknown kind %q", ErrUnprocessable, s.Kind)
	}
	n := 0
	if s.Split != nil {
		n = s.Split.Tasks
	}
	inputs, err := k.Split(s.Input, n, lim)
	if err != nil {
		return nil, err
	}
	if len(inputs) == 0 {
		return nil, fmt.Errorf("%w: the job has no tasks", ErrUnprocessable)
	}
	if len(inputs) > lim.MaxTasks {
		return nil, fmt.Errorf("%w: the job splits into %d tasks, the limit is %d", ErrTooLarge, len(inputs), lim.MaxTasks)
	}
	for i, in := range inputs {
		if len(in) > lim.MaxTaskBytes {
			return nil, fmt.Errorf("%w: task %d input is %d bytes, the limit is %d", ErrTooLarge, i, len(in), lim.MaxTaskBytes)
		}
	}
	return inputs, nil
}
