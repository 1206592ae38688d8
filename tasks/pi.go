package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Limits of the pi kind.
const (
	piMaxSamples         = 1_000_000_000_000
	piDefaultTaskSamples = 50_000_000 // about a second in a browser
	piCheckEvery         = 1 << 20    // samples between looks at ctx
)

// piKind estimates π by sampling points of the unit square.
//
//	job input   {"samples": S, "seed": 7}               1 ≤ S ≤ 1e12, 0 ≤ seed < 2^32 (default 0)
//	task input  {"samples": s, "seed": 7, "index": i}
//	task output {"samples": s, "inside": n}
//	result      {"samples": S, "inside": N, "estimate": 4N/S}
//
// Task i draws from newTaskRand(seed, i). A sample takes two outputs a, b;
// x = a/2^32 and y = b/2^32 (exact float64 divisions); it is inside when
// x*x + y*y < 1, each product rounded to float64 before the sum (no fused
// multiply-add), exactly as JavaScript computes it.
type piKind struct{}

func init() { register(piKind{}) }

func (piKind) Name() string { return "pi" }

func parsePiInput(input json.RawMessage) (samples uint64, seed uint32, err error) {
	o, err := parseObject("pi input", input, "samples", "seed")
	if err != nil {
		return 0, 0, err
	}
	if samples, err = o.uint("samples", piMaxSamples); err != nil {
		return 0, 0, err
	}
	if samples == 0 {
		return 0, 0, fmt.Errorf("%w: pi input: samples must be at least 1", ErrUnprocessable)
	}
	if o.has("seed") {
		s, err := o.uint("seed", math.MaxUint32)
		if err != nil {
			return 0, 0, err
		}
		seed = uint32(s)
	}
	return samples, seed, nil
}

func (piKind) Split(input json.RawMessage, tasks int, lim Limits) ([]json.RawMessage, error) {
	samples, seed, err := parsePiInput(input)
	if err != nil {
		return nil, err
	}
	k := uint64(tasks)
	if tasks <= 0 {
		k = (samples + piDefaultTaskSamples - 1) / piDefaultTaskSamples
	}
	k = clampTasks(k, samples, lim)
	seedText := strconv.FormatUint(uint64(seed), 10)
	out := make([]json.RawMessage, k)
	for i := range k {
		_, size := evenPart(samples, k, i)
		b := make([]byte, 0, 64)
		b = append(b, `{"samples":`...)
		b = strconv.AppendUint(b, size, 10)
		b = append(b, `,"seed":`...)
		b = append(b, seedText...)
		b = append(b, `,"index":`...)
		b = strconv.AppendUint(b, i, 10)
		b = append(b, '}')
		out[i] = b
	}
	return out, nil
}

// piOutput is one task's output.
type piOutput struct {
	Samples uint64 `json:"samples"`
	Inside  uint64 `json:"inside"`
}

func parsePiOutput(what string, data json.RawMessage, wantSamples uint64) (piOutput, error) {
	o, err := parseObject(what, data, "samples", "inside")
	if err != nil {
		return piOutput{}, err
	}
	var out piOutput
	if out.Samples, err = o.uint("samples", maxSafeInt); err != nil {
		return out, err
	}
	if out.Samples != wantSamples {
		return out, fmt.Errorf("%w: %s: samples is %d, the task had %d", ErrUnprocessable, what, out.Samples, wantSamples)
	}
	if out.Inside, err = o.uint("inside", out.Samples); err != nil {
		return out, err
	}
	return out, nil
}

func (piKind) Reduce(_ string, input json.RawMessage, outputs []json.RawMessage) (json.RawMessage, error) {
	samples, _, err := parsePiInput(input)
	if err != nil {
		return nil, err
	}
	k := uint64(len(outputs))
	if k == 0 || k > samples {
		return nil, fmt.Errorf("pi: %d outputs cannot cover %d samples", k, samples)
	}
	var inside uint64
	for i, raw := range outputs {
		_, size := evenPart(samples, k, uint64(i))
		out, err := parsePiOutput(fmt.Sprintf("pi task %d output", i), raw, size)
		if err != nil {
			return nil, err
		}
		inside += out.Inside
	}
	b, err := json.Marshal(struct {
		Samples  uint64  `json:"samples"`
		Inside   uint64  `json:"inside"`
		Estimate float64 `json:"estimate"`
	}{samples, inside, 4 * float64(inside) / float64(samples)})
	if err != nil {
		return nil, fmt.Errorf("pi result: %w", err)
	}
	return b, nil
}

func (piKind) Run(ctx context.Context, taskInput json.RawMessage) (json.RawMessage, error) {
	o, err := parseObject("pi task", taskInput, "samples", "seed", "index")
	if err != nil {
		return nil, err
	}
	samples, err := o.uint("samples", maxSafeInt)
	if err != nil {
		return nil, err
	}
	seed, err := o.uint("seed", math.MaxUint32)
	if err != nil {
		return nil, err
	}
	index, err := o.uint("index", math.MaxUint32)
	if err != nil {
		return nil, err
	}
	inside, err := piSample(ctx, samples, uint32(seed), uint32(index))
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(piOutput{Samples: samples, Inside: inside})
	if err != nil {
		return nil, fmt.Errorf("pi output: %w", err)
	}
	return b, nil
}

// piSample counts the inside points among samples points of task index.
func piSample(ctx context.Context, samples uint64, seed, index uint32) (uint64, error) {
	r := newTaskRand(seed, index)
	var inside uint64
	for i := uint64(0); i < samples; i++ {
		if i%piCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return 0, fmt.Errorf("sample pi: %w", err)
			}
		}
		x := float64(r.next()) / (1 << 32)
		y := float64(r.next()) / (1 << 32)
		// The explicit conversions forbid fusing into an FMA (allowed by
		// the Go spec on arm64 and others), which JavaScript never does.
		if float64(x*x)+float64(y*y) < 1 {
			inside++
		}
	}
	return inside, nil
}
