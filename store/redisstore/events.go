package redisstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tabgrid/tabgrid/store"
)

// Publish broadcasts ev to every coordinator over Redis pub/sub.
func (s *Store) Publish(ctx context.Context, ev store.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("publish event: %w", err)
	}
	return wrapErr("publish event", s.rdb.Publish(ctx, s.k.events(), b).Err())
}

// subscribeBuffer is how many events may wait for a slow reader before
// newer ones are dropped (delivery is best effort).
const subscribeBuffer = 256

// Subscribe delivers events until ctx ends or the store closes; the
// channel is then closed. go-redis reconnects and resubscribes by itself
// when Redis restarts; events published meanwhile are lost.
func (s *Store) Subscribe(ctx context.Context) (<-chan store.Event, error) {
	select {
	case <-s.done:
		return nil, fmt.Errorf("subscribe events: store is closed")
	default:
	}
	ps := s.rdb.Subscribe(ctx, s.k.events())
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return nil, wrapErr("subscribe events", err)
	}
	in := ps.Channel()
	out := make(chan store.Event, subscribeBuffer)
	s.wg.Add(1)
	go func() { // owned by the Store: Close waits for it
		defer s.wg.Done()
		defer close(out)
		defer ps.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.done:
				return
			case m, ok := <-in:
				if !ok {
					return
				}
				var ev store.Event
				if err := json.Unmarshal([]byte(m.Payload), &ev); err != nil {
					s.log.Warn("drop malformed event", "err", err)
					continue
				}
				select {
				case out <- ev:
				default:
					s.log.Debug("drop event: subscriber is slow", "type", ev.Type)
				}
			}
		}
	}()
	return out, nil
}
