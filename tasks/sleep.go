package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// sleepKind waits; it exists for benchmarks, tests and demos.
//
//	job input   {"tasks": N, "ms": M}   1 ≤ N ≤ MaxTasks, 0 ≤ M ≤ MaxTaskTimeout in ms
//	task input  {"ms": M}
//	task output {}
//	result      {"tasks": N}
//
// Benchmarks submit jobs of hundreds of thousands of tasks, so Split
// shares one task input among all tasks and Reduce compares bytes instead
// of parsing. The split hint is ignored: the input names the task count.
type sleepKind struct{}

func init() { register(sleepKind{}) }

func (sleepKind) Name() string { return "sleep" }

var (
	sleepOutput   = []byte(`{}`)
	sleepZeroTask = []byte(`{"ms":0}`)
)

// sleepResult is a fresh output each time, so that no caller can change
// another's.
func sleepResult() json.RawMessage { return json.RawMessage(`{}`) }

// maxSleep bounds ms when the limits name no task timeout.
const maxSleep = time.Hour

func parseSleepInput(input json.RawMessage, lim Limits) (tasks, ms uint64, err error) {
	o, err := parseObject("sleep input", input, "tasks", "ms")
	if err != nil {
		return 0, 0, err
	}
	maxTasks := uint64(maxSafeInt)
	if lim.MaxTasks > 0 {
		maxTasks = uint64(lim.MaxTasks)
	}
	// Checked here rather than left to SplitTasks, so that a large count is
	// refused before allocating its tasks, with ErrTooLarge.
	if tasks, err = o.uint("tasks", maxSafeInt); err != nil {
		return 0, 0, err
	}
	if tasks == 0 {
		return 0, 0, fmt.Errorf("%w: sleep input: tasks must be at least 1", ErrUnprocessable)
	}
	if tasks > maxTasks {
		return 0, 0, fmt.Errorf("%w: sleep input: tasks is %d, the limit is %d", ErrTooLarge, tasks, maxTasks)
	}
	longest := maxSleep
	if lim.MaxTaskTimeout > 0 {
		longest = lim.MaxTaskTimeout
	}
	if ms, err = o.uint("ms", uint64(longest/time.Millisecond)); err != nil {
		return 0, 0, err
	}
	return tasks, ms, nil
}

// Split returns the same task input slice for every task: callers must
// not modify task inputs.
func (sleepKind) Split(input json.RawMessage, _ int, lim Limits) ([]json.RawMessage, error) {
	tasks, ms, err := parseSleepInput(input, lim)
	if err != nil {
		return nil, err
	}
	in := json.RawMessage(`{"ms":` + strconv.FormatUint(ms, 10) + `}`)
	out := make([]json.RawMessage, tasks)
	for i := range out {
		out[i] = in
	}
	return out, nil
}

func (sleepKind) Reduce(_ string, input json.RawMessage, outputs []json.RawMessage) (json.RawMessage, error) {
	tasks, _, err := parseSleepInput(input, Limits{})
	if err != nil {
		return nil, err
	}
	if uint64(len(outputs)) != tasks {
		return nil, fmt.Errorf("sleep: %d outputs for %d tasks", len(outputs), tasks)
	}
	for i, out := range outputs {
		if bytes.Equal(out, sleepOutput) {
			continue
		}
		// Anything but the exact bytes is parsed once: an object is fine
		// (a client may add fields), the rest is not.
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil || m == nil {
			return nil, fmt.Errorf("%w: sleep task %d output must be a JSON object", ErrInvalidInput, i)
		}
	}
	return json.RawMessage(`{"tasks":` + strconv.FormatUint(tasks, 10) + `}`), nil
}

func (sleepKind) Run(ctx context.Context, taskInput json.RawMessage) (json.RawMessage, error) {
	if bytes.Equal(taskInput, sleepZeroTask) {
		return sleepResult(), nil // the benchmarks' no-op, without parsing
	}
	o, err := parseObject("sleep task", taskInput, "ms")
	if err != nil {
		return nil, err
	}
	ms, err := o.uint("ms", uint64(maxSleep/time.Millisecond))
	if err != nil {
		return nil, err
	}
	if ms == 0 {
		return sleepResult(), nil
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return sleepResult(), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("sleep: %w", ctx.Err())
	}
}
