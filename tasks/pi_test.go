package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func TestPiEstimate(t *testing.T) {
	res := splitRunReduce(t, "pi", `{"samples":4000000,"seed":7}`, 8)
	var r struct {
		Samples  uint64  `json:"samples"`
		Inside   uint64  `json:"inside"`
		Estimate float64 `json:"estimate"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		t.Fatal(err)
	}
	if r.Samples != 4000000 {
		t.Errorf("samples %d, want 4000000", r.Samples)
	}
	if r.Estimate != 4*float64(r.Inside)/float64(r.Samples) {
		t.Errorf("estimate %v does not match inside %d", r.Estimate, r.Inside)
	}
	// 4e6 samples: the standard error is about 0.0008.
	if math.Abs(r.Estimate-math.Pi) > 0.005 {
		t.Errorf("estimate %v, too far from π", r.Estimate)
	}
}

func TestPiTasksDiffer(t *testing.T) {
	// Seeds and indices must give distinct streams: equal counts for many
	// tasks of 10000 samples would mean shared streams.
	seen := map[uint64]int{}
	for i := range uint32(20) {
		in, err := piSample(context.Background(), 10000, 7, i)
		if err != nil {
			t.Fatal(err)
		}
		seen[in]++
	}
	if len(seen) < 10 {
		t.Errorf("20 tasks gave only %d distinct counts: %v", len(seen), seen)
	}
	a, _ := piSample(context.Background(), 10000, 7, 0)
	b, _ := piSample(context.Background(), 10000, 8, 0)
	c, _ := piSample(context.Background(), 10000, 7, 0)
	if a != c {
		t.Errorf("same seed and index gave %d then %d", a, c)
	}
	if a == b {
		t.Logf("seeds 7 and 8 gave the same count %d (possible, unlikely)", a)
	}
}

func TestPiSplit(t *testing.T) {
	lim := DefaultLimits()
	tests := []struct {
		input string
		hint  int
		want  int
	}{
		{`{"samples":1000000000,"seed":7}`, 0, 20},
		{`{"samples":1000000000}`, 3, 3},
		{`{"samples":5,"seed":1}`, 100, 5},
		{`{"samples":1e12,"seed":1}`, 0, 20000},
	}
	for _, tt := range tests {
		ins, err := piKind{}.Split(json.RawMessage(tt.input), tt.hint, lim)
		if err != nil {
			t.Fatalf("%s: %v", tt.input, err)
		}
		if len(ins) != tt.want {
			t.Fatalf("%s hint %d: %d tasks, want %d", tt.input, tt.hint, len(ins), tt.want)
		}
		var sum uint64
		for i, in := range ins {
			var ti struct{ Samples, Seed, Index uint64 }
			if err := json.Unmarshal(in, &ti); err != nil {
				t.Fatal(err)
			}
			if ti.Index != uint64(i) {
				t.Errorf("task %d has index %d", i, ti.Index)
			}
			sum += ti.Samples
		}
		samples, _, _ := parsePiInput(json.RawMessage(tt.input))
		if sum != samples {
			t.Errorf("%s: tasks sample %d in all", tt.input, sum)
		}
	}
}

func TestPiRejects(t *testing.T) {
	tests := []struct {
		input string
		want  error
	}{
		{`{"seed":1}`, ErrUnprocessable},
		{`{"samples":0}`, ErrUnprocessable},
		{`{"samples":1000000000001}`, ErrUnprocessable},
		{`{"samples":10,"seed":4294967296}`, ErrUnprocessable},
		{`{"samples":10,"seed":-1}`, ErrUnprocessable},
		{`{"samples":10.5}`, ErrUnprocessable},
		{`{"samples":true}`, ErrInvalidInput},
		{`{"samples":10,"sed":1}`, ErrInvalidInput},
	}
	for _, tt := range tests {
		if _, err := (piKind{}).Split(json.RawMessage(tt.input), 0, DefaultLimits()); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.input, err, tt.want)
		}
	}
}

func TestPiReduceRejects(t *testing.T) {
	input := json.RawMessage(`{"samples":10,"seed":1}`)
	tests := map[string][]json.RawMessage{
		"missing":        {json.RawMessage(`{"samples":5,"inside":3}`), nil},
		"inside > samp":  {json.RawMessage(`{"samples":10,"inside":11}`)},
		"wrong samples":  {json.RawMessage(`{"samples":9,"inside":1}`)},
		"malformed":      {json.RawMessage(`{"samples":10,`)},
		"no inside":      {json.RawMessage(`{"samples":10}`)},
		"too many tasks": make([]json.RawMessage, 11),
	}
	for name, outs := range tests {
		if res, err := (piKind{}).Reduce("j", input, outs); err == nil {
			t.Errorf("%s: reduced to %s, want an error", name, res)
		}
	}
}

func TestPiRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := piKind{}.Run(ctx, json.RawMessage(`{"samples":10,"seed":1,"index":0}`))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}
