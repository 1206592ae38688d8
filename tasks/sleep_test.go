package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestSleepSplitSharesOneInput(t *testing.T) {
	ins, err := sleepKind{}.Split(json.RawMessage(`{"tasks":200000,"ms":0}`), 5, DefaultLimits())
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("200000 tasks over the default 100000 limit: err = %v", err)
	}
	lim := DefaultLimits()
	lim.MaxTasks = 200_000
	ins, err = sleepKind{}.Split(json.RawMessage(`{"tasks":200000,"ms":0}`), 5, lim)
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 200_000 {
		t.Fatalf("%d tasks", len(ins))
	}
	if string(ins[0]) != `{"ms":0}` || &ins[0][0] != &ins[len(ins)-1][0] {
		t.Errorf("tasks do not share one input %s", ins[0])
	}
	outs := make([]json.RawMessage, len(ins))
	for i := range outs {
		outs[i] = json.RawMessage(`{}`)
	}
	outs[7] = json.RawMessage(` {"ok": true} `)
	res, err := sleepKind{}.Reduce("j", json.RawMessage(`{"tasks":200000,"ms":0}`), outs)
	if err != nil {
		t.Fatal(err)
	}
	if string(res) != `{"tasks":200000}` {
		t.Errorf("result %s", res)
	}
}

func TestSleepRejects(t *testing.T) {
	tests := []struct {
		input string
		want  error
	}{
		{`{"tasks":0,"ms":1}`, ErrUnprocessable},
		{`{"ms":1}`, ErrUnprocessable},
		{`{"tasks":1}`, ErrUnprocessable},
		{`{"tasks":1,"ms":-1}`, ErrUnprocessable},
		{`{"tasks":1,"ms":3600001}`, ErrUnprocessable},
		{`{"tasks":100001,"ms":1}`, ErrTooLarge},
		{`{"tasks":"1","ms":1}`, ErrInvalidInput},
	}
	for _, tt := range tests {
		if _, err := (sleepKind{}).Split(json.RawMessage(tt.input), 0, DefaultLimits()); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.input, err, tt.want)
		}
	}
}

func TestSleepReduceRejects(t *testing.T) {
	input := json.RawMessage(`{"tasks":2,"ms":0}`)
	for name, outs := range map[string][]json.RawMessage{
		"too few":   {json.RawMessage(`{}`)},
		"too many":  {json.RawMessage(`{}`), json.RawMessage(`{}`), json.RawMessage(`{}`)},
		"missing":   {json.RawMessage(`{}`), nil},
		"malformed": {json.RawMessage(`{}`), json.RawMessage(`{`)},
		"not obj":   {json.RawMessage(`{}`), json.RawMessage(`[]`)},
		"null":      {json.RawMessage(`{}`), json.RawMessage(`null`)},
	} {
		if res, err := (sleepKind{}).Reduce("j", input, outs); err == nil {
			t.Errorf("%s: reduced to %s", name, res)
		}
	}
}

func TestSleepRun(t *testing.T) {
	out, err := sleepKind{}.Run(context.Background(), json.RawMessage(`{"ms":0}`))
	if err != nil || string(out) != `{}` {
		t.Fatalf("0 ms: %s, %v", out, err)
	}
	start := time.Now()
	out, err = sleepKind{}.Run(context.Background(), json.RawMessage(`{"ms": 20}`))
	if err != nil || string(out) != `{}` {
		t.Fatalf("20 ms: %s, %v", out, err)
	}
	// A lower bound only: a busy machine can make it longer, never shorter.
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("slept %v, want at least 20ms", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (sleepKind{}).Run(ctx, json.RawMessage(`{"ms":3600000}`)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
}

func BenchmarkSleepSplitReduce200k(b *testing.B) {
	lim := DefaultLimits()
	lim.MaxTasks = 200_000
	input := json.RawMessage(`{"tasks":200000,"ms":0}`)
	outs := make([]json.RawMessage, 200_000)
	for i := range outs {
		outs[i] = json.RawMessage(`{}`)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (sleepKind{}).Split(input, 0, lim); err != nil {
			b.Fatal(err)
		}
		if _, err := (sleepKind{}).Reduce("j", input, outs); err != nil {
			b.Fatal(err)
		}
	}
}
