package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
)

// Limits of the js kind.
const (
	jsMaxCodeBytes   = 64 << 10
	jsDefaultTasks   = 64
	jsTaskHeadroom   = 256 // bytes of a task input besides code and items
	jsMinTaskPayload = 1024
)

// jsKind maps submitted JavaScript over items, in browsers only.
//
//	job input   {"code": "(item, index) => item * item", "items": [1, 2, 3]}
//	task input  {"code": "...", "items": [a chunk], "offset": index of its first item}
//	task output {"outputs": [one per item of the chunk]}
//	result      {"outputs": [one per item, in input order]}
//
// The worker calls the function as fn(item, index), index counting from the
// job's first item (offset + i), one item at a time, awaiting each result
// (undefined becomes null). Chunks are consecutive and of nearly equal
// length (evenPart), so the reducer can tell each chunk's length from the
// item count and the number of outputs. There is no Go reference: Run
// returns ErrNoReference.
type jsKind struct{}

func init() { register(jsKind{}) }

func (jsKind) Name() string { return "js" }

func parseJSInput(input json.RawMessage, lim Limits) (code string, items []json.RawMessage, err error) {
	o, err := parseObject("js input", input, "code", "items")
	if err != nil {
		return "", nil, err
	}
	if !o.has("code") {
		return "", nil, fmt.Errorf("%w: js input: code is required", ErrUnprocessable)
	}
	if err := json.Unmarshal(o.fields["code"], &code); err != nil {
		return "", nil, fmt.Errorf("%w: js input: code must be a string", ErrInvalidInput)
	}
	if len(bytes.TrimSpace([]byte(code))) == 0 {
		return "", nil, fmt.Errorf("%w: js input: code must not be empty", ErrUnprocessable)
	}
	if len(code) > jsMaxCodeBytes {
		return "", nil, fmt.Errorf("%w: js input: code is %d bytes, the limit is %d", ErrTooLarge, len(code), jsMaxCodeBytes)
	}
	if !o.has("items") {
		return "", nil, fmt.Errorf("%w: js input: items is required", ErrUnprocessable)
	}
	if err := json.Unmarshal(o.fields["items"], &items); err != nil {
		return "", nil, fmt.Errorf("%w: js input: items must be an array", ErrInvalidInput)
	}
	if len(items) == 0 {
		return "", nil, fmt.Errorf("%w: js input: items must not be empty", ErrUnprocessable)
	}
	if lim.MaxJSItems > 0 && len(items) > lim.MaxJSItems {
		return "", nil, fmt.Errorf("%w: js input: %d items, the limit is %d", ErrTooLarge, len(items), lim.MaxJSItems)
	}
	return code, items, nil
}

func (jsKind) Split(input json.RawMessage, tasks int, lim Limits) ([]json.RawMessage, error) {
	code, items, err := parseJSInput(input, lim)
	if err != nil {
		return nil, err
	}
	codeJSON, err := json.Marshal(code)
	if err != nil {
		return nil, fmt.Errorf("js task input: %w", err)
	}
	n := uint64(len(items))
	k := uint64(tasks)
	if tasks <= 0 {
		k = jsDefaultTasks
	}
	// Raise the count so that chunks of average size fit a task input;
	// SplitTasks still rejects a chunk over the limit (a few huge items).
	if lim.MaxTaskBytes > 0 {
		itemBytes := 0
		for _, it := range items {
			itemBytes += len(it) + 1
		}
		room := max(lim.MaxTaskBytes-len(codeJSON)-jsTaskHeadroom, jsMinTaskPayload)
		k = max(k, uint64((itemBytes+room-1)/room))
	}
	k = clampTasks(k, n, lim)
	out := make([]json.RawMessage, k)
	for i := range k {
		start, size := evenPart(n, k, i)
		var b bytes.Buffer
		b.WriteString(`{"code":`)
		b.Write(codeJSON)
		b.WriteString(`,"items":[`)
		for j, it := range items[start : start+size] {
			if j > 0 {
				b.WriteByte(',')
			}
			if err := json.Compact(&b, it); err != nil {
				return nil, fmt.Errorf("%w: js input: item %d: %v", ErrInvalidInput, int(start)+j, err)
			}
		}
		b.WriteString(`],"offset":`)
		b.WriteString(strconv.FormatUint(start, 10))
		b.WriteByte('}')
		out[i] = b.Bytes()
	}
	return out, nil
}

func (jsKind) Reduce(_ string, input json.RawMessage, outputs []json.RawMessage) (json.RawMessage, error) {
	// The item limit was checked at submission; the reducer must not fail
	// a job because the coordinator's limits changed since.
	_, items, err := parseJSInput(input, Limits{})
	if err != nil {
		return nil, err
	}
	n, k := uint64(len(items)), uint64(len(outputs))
	if k == 0 || k > n {
		return nil, fmt.Errorf("js: %d outputs cannot cover %d items", k, n)
	}
	var b bytes.Buffer
	b.WriteString(`{"outputs":[`)
	for i, raw := range outputs {
		_, size := evenPart(n, k, uint64(i))
		what := fmt.Sprintf("js task %d output", i)
		o, err := parseObject(what, raw, "outputs")
		if err != nil {
			return nil, err
		}
		var outs []json.RawMessage
		if !o.has("outputs") {
			return nil, fmt.Errorf("%w: %s: outputs is required", ErrUnprocessable, what)
		}
		if err := json.Unmarshal(o.fields["outputs"], &outs); err != nil {
			return nil, fmt.Errorf("%w: %s: outputs must be an array", ErrInvalidInput, what)
		}
		if uint64(len(outs)) != size {
			return nil, fmt.Errorf("%w: %s: %d outputs for %d items", ErrUnprocessable, what, len(outs), size)
		}
		for j, it := range outs {
			if i > 0 || j > 0 {
				b.WriteByte(',')
			}
			if err := json.Compact(&b, it); err != nil {
				return nil, fmt.Errorf("%w: %s: output %d: %v", ErrInvalidInput, what, j, err)
			}
		}
	}
	b.WriteString(`]}`)
	return b.Bytes(), nil
}

// Run has no Go reference: the code is JavaScript and runs only in the
// sandboxed worker of a browser tab.
func (jsKind) Run(context.Context, json.RawMessage) (json.RawMessage, error) {
	return nil, fmt.Errorf("js: %w", ErrNoReference)
}
