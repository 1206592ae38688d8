package memstore_test

import (
	"testing"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/store/memstore"
	"github.com/tabgrid/tabgrid/store/storetest"
)

func newStore(tb testing.TB) store.Store {
	tb.Helper()
	s, err := memstore.New()
	if err != nil {
		tb.Fatalf("new memstore: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newStore(t) })
}

func BenchmarkClaimComplete(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store { return newStore(b) })
}

func TestInvariants(t *testing.T) {
	storetest.RunInvariants(t, func(t *testing.T) store.Store { return newStore(t) })
}
