package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestJSSplitReduce(t *testing.T) {
	items := make([]string, 10)
	for i := range items {
		items[i] = fmt.Sprint(i)
	}
	input := json.RawMessage(`{"code":"(item) => item * item","items":[` + strings.Join(items, ", ") + `]}`)
	for _, hint := range []int{0, 1, 3, 10, 50} {
		ins, err := jsKind{}.Split(input, hint, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		want := min(max(hint, 1), 10)
		if hint == 0 {
			want = 10 // default 64, clamped to the items
		}
		if len(ins) != want {
			t.Fatalf("hint %d: %d tasks, want %d", hint, len(ins), want)
		}
		// Play the browser: square each item of each chunk, checking the
		// offsets as we go.
		outs := make([]json.RawMessage, len(ins))
		next := 0
		for i, in := range ins {
			var ti struct {
				Code   string
				Items  []int
				Offset int
			}
			if err := json.Unmarshal(in, &ti); err != nil {
				t.Fatal(err)
			}
			if ti.Code != "(item) => item * item" || ti.Offset != next {
				t.Fatalf("task %d: %s", i, in)
			}
			next += len(ti.Items)
			sq := make([]int, len(ti.Items))
			for j, v := range ti.Items {
				sq[j] = v * v
			}
			outs[i], _ = json.Marshal(map[string]any{"outputs": sq})
		}
		res, err := jsKind{}.Reduce("j", input, outs)
		if err != nil {
			t.Fatal(err)
		}
		if string(res) != `{"outputs":[0,1,4,9,16,25,36,49,64,81]}` {
			t.Errorf("hint %d: result %s", hint, res)
		}
	}
}

func TestJSKeepsItemsVerbatim(t *testing.T) {
	input := json.RawMessage(`{"code":"x => x","items":[{"a": [1, "<b>"]}, null, "é\u00e9", 1.5e300]}`)
	ins, err := jsKind{}.Split(input, 1, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	var ti struct{ Items []any }
	if err := json.Unmarshal(ins[0], &ti); err != nil {
		t.Fatal(err)
	}
	var want struct{ Items []any }
	_ = json.Unmarshal(input, &want)
	if fmt.Sprint(ti.Items) != fmt.Sprint(want.Items) {
		t.Errorf("items %v, want %v", ti.Items, want.Items)
	}
}

func TestJSRejects(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxJSItems = 3
	tests := []struct {
		input string
		want  error
	}{
		{`{"items":[1]}`, ErrUnprocessable},
		{`{"code":"","items":[1]}`, ErrUnprocessable},
		{`{"code":"  ","items":[1]}`, ErrUnprocessable},
		{`{"code":"x=>x","items":[]}`, ErrUnprocessable},
		{`{"code":"x=>x"}`, ErrUnprocessable},
		{`{"code":"x=>x","items":[1,2,3,4]}`, ErrTooLarge},
		{`{"code":"` + strings.Repeat("x", jsMaxCodeBytes+1) + `","items":[1]}`, ErrTooLarge},
		{`{"code":5,"items":[1]}`, ErrInvalidInput},
		{`{"code":"x=>x","items":{"a":1}}`, ErrInvalidInput},
		{`{"code":"x=>x","items":[1],"extra":1}`, ErrInvalidInput},
	}
	for _, tt := range tests {
		if _, err := (jsKind{}).Split(json.RawMessage(tt.input), 0, lim); !errors.Is(err, tt.want) {
			t.Errorf("%.60s: err = %v, want %v", tt.input, err, tt.want)
		}
	}
}

func TestJSSplitRaisesTasksToFitTaskBytes(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxTaskBytes = 4096
	items := strings.Repeat(`"`+strings.Repeat("a", 98)+`",`, 200) // 20000 bytes
	input := json.RawMessage(`{"code":"x=>x","items":[` + strings.TrimSuffix(items, ",") + `]}`)
	spec := Spec{Kind: "js", Input: input, Split: &SplitHint{Tasks: 1}}
	ins, err := spec.SplitTasks(lim)
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) < 5 {
		t.Errorf("%d tasks for 20000 bytes of items at 4096 bytes a task", len(ins))
	}
}

func TestJSReduceRejects(t *testing.T) {
	input := json.RawMessage(`{"code":"x=>x","items":[1,2,3]}`)
	tests := map[string][]json.RawMessage{
		"none":          {},
		"missing":       {json.RawMessage(`{"outputs":[1,2]}`), nil},
		"short":         {json.RawMessage(`{"outputs":[1,2]}`)},
		"long":          {json.RawMessage(`{"outputs":[1,2,3,4]}`)},
		"not array":     {json.RawMessage(`{"outputs":5}`)},
		"no outputs":    {json.RawMessage(`{}`)},
		"malformed":     {json.RawMessage(`{"outputs":[1,2,`)},
		"more than all": make([]json.RawMessage, 4),
	}
	for name, outs := range tests {
		if res, err := (jsKind{}).Reduce("j", input, outs); err == nil {
			t.Errorf("%s: reduced to %s", name, res)
		}
	}
}

func TestJSRunHasNoReference(t *testing.T) {
	_, err := jsKind{}.Run(context.Background(), json.RawMessage(`{"code":"x=>x","items":[1],"offset":0}`))
	if !errors.Is(err, ErrNoReference) {
		t.Errorf("err = %v, want ErrNoReference", err)
	}
}
