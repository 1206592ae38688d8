package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/store"
)

var eventTests = []subtest{
	{"PublishSubscribe", testPublishSubscribe},
}

func testPublishSubscribe(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	// A subscription may take a moment to be live (Redis SUBSCRIBE), and
	// delivery is best effort: publish until one arrives.
	want := store.Event{Type: "work", Data: json.RawMessage(`{"job":"j1"}`)}
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	if err := s.Publish(context.Background(), want); err != nil {
		t.Fatalf("publish: %v", err)
	}
wait:
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("the event channel closed while the subscription was live")
			}
			if ev.Type != want.Type || !jsonEqual(ev.Data, want.Data) {
				t.Fatalf("event %+v (data %s), want %+v", ev, ev.Data, want)
			}
			break wait
		case <-tick.C:
			if err := s.Publish(context.Background(), want); err != nil {
				t.Fatalf("publish: %v", err)
			}
		case <-deadline:
			t.Fatal("no event within ten seconds of publishing")
		}
	}

	cancel()
	deadline = time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("the event channel did not close within ten seconds of cancelling")
		}
	}
}
