package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tabgrid/tabgrid/store"
)

// RenewWorkers extends the coordinator's lease and writes its tabs, in one
// pipeline (both keys are on the cross-job slot).
func (s *Store) RenewWorkers(ctx context.Context, coordinator string, workers []store.WorkerInfo, ttl time.Duration) error {
	pipe := s.rdb.Pipeline()
	pipe.ZAdd(ctx, s.k.coords(), redis.Z{Score: ms(s.now().Add(ttl)), Member: coordinator})
	if len(workers) > 0 {
		fields := make([]any, 0, 2*len(workers))
		for _, w := range workers {
			b, err := json.Marshal(w)
			if err != nil {
				return fmt.Errorf("renew workers: %w", err)
			}
			fields = append(fields, w.ID, b)
		}
		pipe.HSet(ctx, s.k.coordWorkers(coordinator), fields...)
	}
	_, err := pipe.Exec(ctx)
	return wrapErr("renew workers", err)
}

// RemoveWorker forgets one tab of a coordinator.
func (s *Store) RemoveWorker(ctx context.Context, coordinator, workerID string) error {
	return wrapErr("remove worker", s.rdb.HDel(ctx, s.k.coordWorkers(coordinator), workerID).Err())
}

// ListWorkers returns the tabs of every coordinator whose lease is live.
func (s *Store) ListWorkers(ctx context.Context) ([]store.WorkerInfo, error) {
	coords, err := s.rdb.ZRangeByScore(ctx, s.k.coords(), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(s.now().UnixMilli(), 10), Max: "+inf",
	}).Result()
	if err != nil {
		return nil, wrapErr("list workers", err)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(coords))
	for i, c := range coords {
		cmds[i] = pipe.HVals(ctx, s.k.coordWorkers(c))
	}
	if len(coords) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, wrapErr("list workers", err)
		}
	}
	out := []store.WorkerInfo{}
	for i, c := range cmds {
		for _, v := range c.Val() {
			var w store.WorkerInfo
			if err := json.Unmarshal([]byte(v), &w); err != nil {
				s.log.Warn("skip malformed worker record", "err", err)
				continue
			}
			w.Coordinator = coords[i]
			out = append(out, w)
		}
	}
	return out, nil
}

// Reap releases the tabs of coordinators whose lease expired before now,
// then forgets each coordinator, but only if its lease is still expired.
// Releasing comes first, so a crash mid-way leaves the coordinator listed
// for the next Reap; release scripts only touch leases still held by that
// worker, so concurrent Reaps count each task once.
func (s *Store) Reap(ctx context.Context, now time.Time) (int, error) {
	nowMs := strconv.FormatInt(now.UnixMilli(), 10)
	coords, err := s.rdb.ZRangeByScore(ctx, s.k.coords(), &redis.ZRangeBy{Min: "-inf", Max: "(" + nowMs}).Result()
	if err != nil {
		return 0, wrapErr("reap", err)
	}
	n := 0
	for _, c := range coords {
		wids, err := s.rdb.HKeys(ctx, s.k.coordWorkers(c)).Result()
		if err != nil {
			return n, wrapErr("reap", err)
		}
		for _, w := range wids {
			k, err := s.ReleaseWorker(ctx, w)
			n += k
			if err != nil {
				return n, err
			}
		}
		if err := forgetCoord.Run(ctx, s.rdb, []string{s.k.coords(), s.k.coordWorkers(c)}, c, now.UnixMilli()).Err(); err != nil {
			return n, wrapErr("reap", err)
		}
		if len(wids) > 0 {
			s.log.Info("reaped coordinator", "coordinator", c, "workers", len(wids))
		}
	}
	return n, nil
}
