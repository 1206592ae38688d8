package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/store/redisstore"
	"github.com/tabgrid/tabgrid/store/redistest"
	"github.com/tabgrid/tabgrid/store/storetest"
	"github.com/tabgrid/tabgrid/tasks"
)

// open connects a store to url under a fresh key prefix, so the subtests of
// one redis-server never see each other's keys.
func open(tb testing.TB, url string) *redisstore.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redisstore.New(ctx, url, redisstore.WithPrefix("t"+storetest.NewID()))
	if err != nil {
		tb.Fatalf("redis store: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func TestContract(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, srv.URL()) })
}

// TestContractCluster runs the whole suite on a 3-node Redis Cluster, so a
// script whose keys span two hash tags fails here (CROSSSLOT) and not in
// an operator's deployment.
func TestContractCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, c.URL()) })
}

func TestInvariants(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunInvariants(t, func(t *testing.T) store.Store { return open(t, srv.URL()) })
}

func BenchmarkClaimComplete(b *testing.B) {
	srv := redistest.Start(b)
	storetest.Bench(b, func(b *testing.B) store.Store { return open(b, srv.URL()) })
}

// TestRedisKilledMidDispatch kills redis-server while claims and completes
// run, checks that every call fails with an error (and nothing panics),
// restarts it from its AOF and checks that the job then finishes with
// every task counted exactly once.
func TestRedisKilledMidDispatch(t *testing.T) {
	srv := redistest.Start(t, redistest.WithAOF(), redistest.WithArgs("--appendfsync", "always"))
	s := open(t, srv.URL())
	ctx := context.Background()

	const n = 400
	job, _, err := s.CreateJob(ctx, storetest.NewJob("sleep", n))
	if err != nil {
		t.Fatal(err)
	}
	storetest.Register(t, s, "coord-a", "w1")

	// Work half the job, then kill Redis between a claim and its complete.
	accepted := 0
	drain := func(max int) (ls []store.Lease, err error) {
		ls, err = s.Claim(ctx, []store.ClaimRequest{{Worker: "w1", Max: max}})
		return ls, err
	}
	for accepted < n/2 {
		ls, err := drain(32)
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.Complete(ctx, okResults(ls))
		if err != nil {
			t.Fatal(err)
		}
		accepted += count(c, store.Accepted)
	}
	held, err := drain(32)
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()

	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := s.Complete(short, okResults(held)); err == nil {
		t.Fatal("complete with Redis down: no error")
	}
	if _, err := s.Claim(short, []store.ClaimRequest{{Worker: "w1", Max: 8}}); err == nil {
		t.Fatal("claim with Redis down: no error")
	}
	if err := s.Ping(short); err == nil {
		t.Fatal("ping with Redis down: no error")
	}
	if _, _, err := s.CreateJob(short, storetest.NewJob("sleep", 3)); err == nil {
		t.Fatal("create job with Redis down: no error")
	}

	srv.Restart()
	deadline := time.Now().Add(20 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("store did not reconnect after restart")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The leases held across the outage are still valid: complete them,
	// then the rest of the job.
	c, err := s.Complete(ctx, okResults(held))
	if err != nil {
		t.Fatal(err)
	}
	accepted += count(c, store.Accepted)
	var done []string
	for range 100 {
		ls, err := drain(64)
		if err != nil {
			t.Fatal(err)
		}
		if len(ls) == 0 {
			break
		}
		c, err := s.Complete(ctx, okResults(ls))
		if err != nil {
			t.Fatal(err)
		}
		accepted += count(c, store.Accepted)
		done = append(done, c.Done...)
	}
	if accepted != n {
		t.Fatalf("accepted %d results, want exactly %d", accepted, n)
	}
	if len(done) != 1 || done[0] != job.ID {
		t.Fatalf("done jobs %v, want [%s]", done, job.ID)
	}
	got := storetest.CheckCounts(t, s, job.ID)
	if got.Tasks.Succeeded != n {
		t.Fatalf("succeeded %d, want %d", got.Tasks.Succeeded, n)
	}
	// A repeat of results already counted stays a no-op.
	c, err = s.Complete(ctx, okResults(held))
	if err != nil {
		t.Fatal(err)
	}
	if k := count(c, store.Accepted); k != 0 {
		t.Fatalf("%d repeated results accepted again", k)
	}
}

// TestNewFailsWhenUnreachable: a wrong address is ErrUnavailable, at once.
func TestNewFailsWhenUnreachable(t *testing.T) {
	srv := redistest.Start(t)
	url := srv.URL()
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := redisstore.New(ctx, url)
	if !errors.Is(err, tasks.ErrUnavailable) {
		t.Fatalf("New on a dead server: %v, want ErrUnavailable", err)
	}
}

func okResults(ls []store.Lease) []store.Result {
	rs := make([]store.Result, len(ls))
	for i, l := range ls {
		rs[i] = store.Result{Worker: l.Worker, JobID: l.JobID, Index: l.Index, Token: l.Token, Output: []byte(`{}`)}
	}
	return rs
}

func count(c store.Completion, o store.Outcome) int {
	k := 0
	for _, got := range c.Outcomes {
		if got == o {
			k++
		}
	}
	return k
}

// openWithFinishedIndex opens a store on a redis-server of its own, with
// a plain client beside it and the name of the store's finished index,
// so a test can undo a step the store took.
func openWithFinishedIndex(t *testing.T) (*redisstore.Store, *redis.Client, string) {
	t.Helper()
	srv := redistest.Start(t)
	prefix := "t" + storetest.NewID()
	s, err := redisstore.New(context.Background(), srv.URL(), redisstore.WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return s, rdb, "{" + prefix + "}:finished"
}

// TestRepeatedEndRepairsRetention: when a job's script ran but recording
// it in the finished index did not (Redis failed in between), the
// caller's repeat of the call records it, so retention still deletes it.
func TestRepeatedEndRepairsRetention(t *testing.T) {
	ctx := context.Background()
	s, rdb, finished := openWithFinishedIndex(t)

	job, _, err := s.CreateJob(ctx, storetest.NewJob("sleep", 3))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelJob(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	// The lost step: the job is cancelled but not in the finished index.
	if n, err := rdb.ZRem(ctx, finished, job.ID).Result(); err != nil || n != 1 {
		t.Fatalf("zrem %s from %s: %d %v", job.ID, finished, n, err)
	}
	if _, err := s.CancelJob(ctx, job.ID); !errors.Is(err, tasks.ErrConflict) {
		t.Fatalf("second cancel: %v, want ErrConflict", err)
	}
	if err := rdb.ZScore(ctx, finished, job.ID).Err(); err != nil {
		t.Fatalf("job not back in the finished index after the repeated cancel: %v", err)
	}
	n, err := s.DeleteFinishedBefore(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("retention deleted %d (%v), want the cancelled job", n, err)
	}
}

// TestLateResultRepairsRetention: the same repair through Complete, for a
// job that failed or was cancelled by a call whose ended step was lost: a
// later result for it puts it back in the finished index.
func TestLateResultRepairsRetention(t *testing.T) {
	ctx := context.Background()
	s, rdb, finished := openWithFinishedIndex(t)

	job, _, err := s.CreateJob(ctx, storetest.NewJob("sleep", 3))
	if err != nil {
		t.Fatal(err)
	}
	storetest.Register(t, s, "c1", "w1")
	ls, err := s.Claim(ctx, []store.ClaimRequest{{Worker: "w1", Max: 3}})
	if err != nil || len(ls) != 3 {
		t.Fatalf("claim: %d leases, %v", len(ls), err)
	}
	if _, err := s.CancelJob(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZRem(ctx, finished, job.ID).Err(); err != nil {
		t.Fatal(err)
	}
	c, err := s.Complete(ctx, okResults(ls))
	if err != nil {
		t.Fatal(err)
	}
	if k := count(c, store.Stale); k != 3 {
		t.Fatalf("%d of 3 results for a cancelled job stale", k)
	}
	if err := rdb.ZScore(ctx, finished, job.ID).Err(); err != nil {
		t.Fatalf("cancelled job not back in the finished index after late results: %v", err)
	}
}
