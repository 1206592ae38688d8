package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
)

// Kind is one kind of work. Its JavaScript twin lives in
// webclient/kinds/NAME.js and must return exactly what Run returns.
type Kind interface {
	// Name is the kind's name in job specs ("primes").
	Name() string
	// Split validates a job input and cuts it into task inputs. tasks is
	// the submitter's split hint (0 = the kind's default). Errors wrap
	// ErrUnprocessable or ErrTooLarge and say what is wrong.
	Split(input json.RawMessage, tasks int, lim Limits) ([]json.RawMessage, error)
	// Reduce combines the task outputs, in task order, into the job
	// result. jobID lets a result point at a URL of its own.
	Reduce(jobID string, input json.RawMessage, outputs []json.RawMessage) (json.RawMessage, error)
	// Run is the Go reference implementation of one task, used by tests
	// and simulated tabs. Kinds that run only in browsers (js) return
	// ErrNoReference.
	Run(ctx context.Context, taskInput json.RawMessage) (json.RawMessage, error)
}

var kinds = map[string]Kind{}

// register adds a built-in kind; called from init in each kind's file.
func register(k Kind) { kinds[k.Name()] = k }

// Lookup returns the kind with that name.
func Lookup(name string) (Kind, bool) {
	k, ok := kinds[name]
	return k, ok
}

// KindNames lists the built-in kinds, sorted.
func KindNames() []string {
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Reference computes a whole job in Go: the kind's splitter with the
// split hint (0 = the kind's default) and default limits, its reference
// implementation for every task, then its reducer. It returns the job
// result and the task outputs in task order. Tests compare what tabs
// return with it.
func Reference(ctx context.Context, kind, jobID string, input json.RawMessage, split int) (json.RawMessage, []json.RawMessage, error) {
	k, ok := Lookup(kind)
	if !ok {
		return nil, nil, fmt.Errorf("%w: unknown kind %q", ErrUnprocessable, kind)
	}
	inputs, err := k.Split(input, split, DefaultLimits())
	if err != nil {
		return nil, nil, fmt.Errorf("split: %w", err)
	}
	outputs := make([]json.RawMessage, len(inputs))
	for i, in := range inputs {
		if outputs[i], err = k.Run(ctx, in); err != nil {
			return nil, nil, fmt.Errorf("task %d: %w", i, err)
		}
	}
	res, err := k.Reduce(jobID, input, outputs)
	if err != nil {
		return nil, nil, fmt.Errorf("reduce: %w", err)
	}
	return res, outputs, nil
}
