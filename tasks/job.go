// Package tasks is tabgrid's domain: jobs, tasks, their states, job specs
// and the kinds of work (each a Go splitter, reducer and reference
// implementation). It imports nothing else of tabgrid's; every other
// package imports it.
package tasks

import (
	"encoding/json"
	"time"
)

// JobState is where a job is in its life. queued → running → one of the
// three final states.
type JobState string

const (
	JobQueued    JobState = "queued"
	JobRunning   JobState = "running"
	JobSucceeded JobState = "succeeded"
	JobFailed    JobState = "failed"
	JobCancelled JobState = "cancelled"
)

// Final reports whether the job can no longer change.
func (s JobState) Final() bool {
	return s == JobSucceeded || s == JobFailed || s == JobCancelled
}

// Valid reports whether s names a job state.
func (s JobState) Valid() bool {
	switch s {
	case JobQueued, JobRunning, JobSucceeded, JobFailed, JobCancelled:
		return true
	}
	return false
}

// TaskState is where one task is. A task is in exactly one state:
// pending (waiting for a tab), running (leased to a tab), succeeded
// (its first valid result is stored) or failed (max attempts used).
type TaskState string

const (
	TaskPending   TaskState = "pending"
	TaskRunning   TaskState = "running"
	TaskSucceeded TaskState = "succeeded"
	TaskFailed    TaskState = "failed"
)

// Valid reports whether s names a task state.
func (s TaskState) Valid() bool {
	switch s {
	case TaskPending, TaskRunning, TaskSucceeded, TaskFailed:
		return true
	}
	return false
}

// Counts are a job's tasks by state. Total always equals the sum of the
// four others.
type Counts struct {
	Total     int `json:"total"`
	Pending   int `json:"pending"`
	Running   int `json:"running"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
}

// Job is the job object of the REST API.
type Job struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Kind        string          `json:"kind"`
	State       JobState        `json:"state"`
	Priority    int             `json:"priority"`
	MaxAttempts int             `json:"max_attempts"`
	TaskTimeout Duration        `json:"task_timeout"`
	CreatedAt   time.Time       `json:"created_at"`
	StartedAt   *time.Time      `json:"started_at"`
	FinishedAt  *time.Time      `json:"finished_at"`
	Tasks       Counts          `json:"tasks"`
	Progress    float64         `json:"progress"`
	Error       string          `json:"error,omitempty"`
	Input       json.RawMessage `json:"-"` // the job input as submitted; kept for the reducer
	Result      json.RawMessage `json:"result,omitempty"`
}

// SetProgress fills Progress from the task counts.
func (j *Job) SetProgress() {
	if j.Tasks.Total == 0 {
		j.Progress = 0
		return
	}
	j.Progress = float64(j.Tasks.Succeeded) / float64(j.Tasks.Total)
}

// Task is one unit of work of a job, as listed by the REST API.
type Task struct {
	JobID    string          `json:"-"`
	Index    int             `json:"index"`
	State    TaskState       `json:"state"`
	Attempts int             `json:"attempts"` // times leased so far (the current fencing token)
	Failures int             `json:"failures"` // errors and timeouts, counted against max_attempts
	Worker   string          `json:"worker,omitempty"`
	Error    string          `json:"error,omitempty"`
	Input    json.RawMessage `json:"-"`
	Output   json.RawMessage `json:"-"`
}

// Duration is a time.Duration that reads and writes JSON as "60s".
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
