package coordinator

import (
	"io"
	"log/slog"
	"testing"
)

// TestSlowDashboardIsDropped: a dashboard that reads nothing is dropped
// once its queue is full, without blocking the broadcast, while one that
// keeps up stays and gets every frame.
func TestSlowDashboardIsDropped(t *testing.T) {
	b := newBroker(nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	slow, fast := b.add(), b.add()
	got := 0
	for range sseQueue * 2 {
		b.broadcast("job", []byte(`{}`))
		select {
		case <-fast.frames:
			got++
		default:
		}
	}
	select {
	case <-slow.dropped:
	default:
		t.Fatal("a dashboard that read nothing was not dropped")
	}
	select {
	case <-fast.dropped:
		t.Fatal("a dashboard that kept up was dropped")
	default:
	}
	if got != sseQueue*2 {
		t.Fatalf("the dashboard that kept up got %d of %d frames", got, sseQueue*2)
	}
	if n := b.clientCount(); n != 1 {
		t.Fatalf("%d dashboards left, want the one that kept up", n)
	}
}
