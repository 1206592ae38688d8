package storetest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/tasks"
)

var workerTests = []subtest{
	{"RenewAndList", testRenewAndList},
	{"RemoveWorker", testRemoveWorker},
	{"ListWorkersSkipsExpired", testListWorkersSkipsExpired},
	{"Reap", testReap},
}

func listWorkers(t testing.TB, s store.Store) []store.WorkerInfo {
	t.Helper()
	ws, err := s.ListWorkers(context.Background())
	if err != nil {
		t.Fatalf("list workers: %v", err)
	}
	slices.SortFunc(ws, func(a, b store.WorkerInfo) int { return strings.Compare(a.ID, b.ID) })
	return ws
}

func workerIDs(ws []store.WorkerInfo) string {
	ids := make([]string, len(ws))
	for i, w := range ws {
		ids[i] = w.ID
	}
	return strings.Join(ids, ",")
}

func testRenewAndList(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := store.WorkerInfo{ID: "wa", Name: "alpha", Capacity: 4, InFlight: 2, Completed: 10, Failed: 1,
		ConnectedAt: now.Add(-time.Minute), LastSeen: now, Rate: 12.5}
	b := store.WorkerInfo{ID: "wb", Name: "beta", Capacity: 2, ConnectedAt: now, LastSeen: now}
	c := store.WorkerInfo{ID: "wc", Name: "gamma", Capacity: 8, ConnectedAt: now, LastSeen: now}
	if err := s.RenewWorkers(ctx, "c1", []store.WorkerInfo{a, b}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.RenewWorkers(ctx, "c2", []store.WorkerInfo{c}, time.Minute); err != nil {
		t.Fatal(err)
	}
	ws := listWorkers(t, s)
	if workerIDs(ws) != "wa,wb,wc" {
		t.Fatalf("workers %s, want wa,wb,wc", workerIDs(ws))
	}
	a.Coordinator, b.Coordinator, c.Coordinator = "c1", "c1", "c2"
	for i, want := range []store.WorkerInfo{a, b, c} {
		if !sameWorker(ws[i], want) {
			t.Fatalf("worker %+v, want %+v", ws[i], want)
		}
	}

	// A renewal updates the tabs it names and keeps the others.
	a.InFlight, a.Completed, a.LastSeen = 4, 20, now.Add(time.Second)
	a.Coordinator = ""
	if err := s.RenewWorkers(ctx, "c1", []store.WorkerInfo{a}, time.Minute); err != nil {
		t.Fatal(err)
	}
	// A renewal with no tabs only extends the lease.
	if err := s.RenewWorkers(ctx, "c2", nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	ws = listWorkers(t, s)
	if workerIDs(ws) != "wa,wb,wc" {
		t.Fatalf("workers after renewal %s, want wa,wb,wc", workerIDs(ws))
	}
	a.Coordinator = "c1"
	if !sameWorker(ws[0], a) {
		t.Fatalf("renewed worker %+v, want %+v", ws[0], a)
	}
}

func sameWorker(got, want store.WorkerInfo) bool {
	return got.ID == want.ID && got.Name == want.Name && got.Capacity == want.Capacity &&
		got.InFlight == want.InFlight && got.Completed == want.Completed && got.Failed == want.Failed &&
		got.ConnectedAt.Equal(want.ConnectedAt) && got.LastSeen.Equal(want.LastSeen) &&
		got.Coordinator == want.Coordinator && got.Rate == want.Rate
}

func testRemoveWorker(t *testing.T, s store.Store) {
	ctx := context.Background()
	Register(t, s, "c1", "w1", "w2")
	Register(t, s, "c2", "w3")
	if err := s.RemoveWorker(ctx, "c1", "w1"); err != nil {
		t.Fatal(err)
	}
	if got := workerIDs(listWorkers(t, s)); got != "w2,w3" {
		t.Fatalf("workers after removing w1: %s, want w2,w3", got)
	}
	if err := s.RemoveWorker(ctx, "c1", "w1"); err != nil {
		t.Fatalf("removing a removed worker: %v", err)
	}
	if err := s.RemoveWorker(ctx, "nobody", "w9"); err != nil {
		t.Fatalf("removing an unknown worker: %v", err)
	}
}

func testListWorkersSkipsExpired(t *testing.T, s store.Store) {
	Register(t, s, "live", "w1")
	RegisterTTL(t, s, "short", 50*time.Millisecond, "w2")
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := workerIDs(listWorkers(t, s))
		if got == "w1" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers %s ten seconds after a 50ms lease, want w1 only", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testReap(t *testing.T, s store.Store) {
	ctx := context.Background()
	nj := NewJob("sleep", 6)
	mustCreate(t, s, nj)
	RegisterTTL(t, s, "dying", time.Minute, "w1", "w2")
	RegisterTTL(t, s, "healthy", time.Hour, "w3")
	ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 2}, store.ClaimRequest{Worker: "w2", Max: 1},
		store.ClaimRequest{Worker: "w3", Max: 2})
	if len(ls) != 5 {
		t.Fatalf("claimed %d, want 5", len(ls))
	}
	if n, err := s.Reap(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("reap with every coordinator alive: %d, %v; want 0", n, err)
	}
	if j := CheckCounts(t, s, nj.Job.ID); j.Tasks.Running != 5 {
		t.Fatalf("counts after a no-op reap %+v", j.Tasks)
	}

	n, err := s.Reap(ctx, time.Now().Add(10*time.Minute))
	if err != nil || n != 3 {
		t.Fatalf("reap ten minutes on: %d, %v; want the dying coordinator's 3 tasks", n, err)
	}
	j := CheckCounts(t, s, nj.Job.ID)
	if j.Tasks.Running != 2 || j.Tasks.Pending != 4 {
		t.Fatalf("counts after reap %+v, want 2 running, 4 pending", j.Tasks)
	}
	for _, tk := range listTasks(t, s, nj.Job.ID, tasks.TaskRunning) {
		if tk.Worker != "w3" {
			t.Fatalf("running task %+v after reap, want only w3's", tk)
		}
	}
	if got := workerIDs(listWorkers(t, s)); got != "w3" {
		t.Fatalf("workers after reap %s, want w3", got)
	}
	// Results for reaped leases are stale; the healthy ones still count.
	var rs []store.Result
	var want []store.Outcome
	for _, l := range ls {
		rs = append(rs, ok(l))
		if l.Worker == "w3" {
			want = append(want, store.Accepted)
		} else {
			want = append(want, store.Stale)
		}
	}
	wantOutcomes(t, complete(t, s, rs...), want...)
	if n, err := s.Reap(ctx, time.Now().Add(10*time.Minute)); err != nil || n != 0 {
		t.Fatalf("second reap: %d, %v; want 0", n, err)
	}
	re := claim(t, s, store.ClaimRequest{Worker: "w3", Max: 10})
	if len(re) != 4 {
		t.Fatalf("claimed %d after reap, want 4", len(re))
	}
	CheckCounts(t, s, nj.Job.ID)
}
