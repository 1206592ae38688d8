package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

func TestReference(t *testing.T) {
	res, outs, err := Reference(context.Background(), "primes", "j", json.RawMessage(`{"from":0,"to":100}`), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 3 {
		t.Fatalf("%d task outputs, want 3", len(outs))
	}
	var got struct{ Count int }
	if err := json.Unmarshal(res, &got); err != nil || got.Count != 25 {
		t.Fatalf("result %s (%v), want 25 primes below 100", res, err)
	}
	if _, _, err := Reference(context.Background(), "nope", "j", json.RawMessage(`{}`), 0); !errors.Is(err, ErrUnprocessable) {
		t.Fatalf("unknown kind: %v, want ErrUnprocessable", err)
	}
	if _, _, err := Reference(context.Background(), "js", "j", json.RawMessage(`{"code":"(x) => x","items":[1]}`), 0); !errors.Is(err, ErrNoReference) {
		t.Fatalf("js has no Go reference: %v, want ErrNoReference", err)
	}
}
