package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"testing"

	"pgregory.net/rapid"
)

// countPrimesByTest counts with big.Int.ProbablyPrime, which is exact for
// numbers below 2^64: a second way to the same answer.
func countPrimesByTest(from, to uint64) uint64 {
	var c uint64
	var x big.Int
	for n := from; n < to; n++ {
		if x.SetUint64(n).ProbablyPrime(0) {
			c++
		}
	}
	return c
}

func TestCountPrimesKnownAnswers(t *testing.T) {
	tests := []struct {
		from, to, want uint64
	}{
		{0, 1, 0},
		{0, 2, 0},
		{0, 3, 1},
		{2, 3, 1},
		{3, 4, 1},
		{4, 5, 0},
		{0, 100, 25},
		{0, 1_000_000, 78498},
		{0, 10_000_000, 664579},
		{1_000_000, 2_000_000, 70435},
		{9409, 9410, 0}, // 97²
		{maxSafeInt - 1, maxSafeInt, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d-%d", tt.from, tt.to), func(t *testing.T) {
			got, err := countPrimes(context.Background(), tt.from, tt.to)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("primes in [%d, %d) = %d, want %d", tt.from, tt.to, got, tt.want)
			}
		})
	}
}

func TestCountPrimesAgreesWithPrimalityTest(t *testing.T) {
	p := uint64(basePrimes(isqrt(maxSafeInt - 1))[len(basePrimes(isqrt(maxSafeInt-1)))-1])
	ranges := [][2]uint64{
		{0, 5000},
		{maxSafeInt - 1000, maxSafeInt},
		{1<<32 - 1000, 1<<32 + 1000},
		{1<<40 + 12345, 1<<40 + 14345},
		{p*p - 500, p*p + 500}, // around the square of the largest base prime
		{1_000_003 * 1_000_003, 1_000_003*1_000_003 + 1},
	}
	for _, r := range ranges {
		got, err := countPrimes(context.Background(), r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		if want := countPrimesByTest(r[0], r[1]); got != want {
			t.Errorf("primes in [%d, %d): sieve %d, primality test %d", r[0], r[1], got, want)
		}
	}
	// The count below 2^53 pinned in the conformance vectors, checked here
	// the second way.
	if got := countPrimesByTest(maxSafeInt-1000, maxSafeInt); got != 25 {
		t.Errorf("primes in [2^53-1000, 2^53) = %d, want 25", got)
	}
}

func TestCountPrimesAcrossSegments(t *testing.T) {
	// Ranges that start and end inside segments, compared with one pass.
	whole, err := countPrimes(context.Background(), 0, 3*primesSegment+17)
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, cut := range [][2]uint64{{0, 12345}, {12345, primesSegment + 1}, {primesSegment + 1, 3*primesSegment + 17}} {
		c, err := countPrimes(context.Background(), cut[0], cut[1])
		if err != nil {
			t.Fatal(err)
		}
		sum += c
	}
	if sum != whole {
		t.Errorf("sum over cuts %d, whole %d", sum, whole)
	}
}

func TestCountPrimesCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := countPrimes(ctx, 0, 100); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestPrimesSplit(t *testing.T) {
	lim := DefaultLimits()
	tests := []struct {
		name      string
		input     string
		hint      int
		lim       Limits
		wantTasks int
	}{
		{"default small", `{"from":0,"to":100}`, 0, lim, 1},
		{"default", `{"from":0,"to":50000000}`, 0, lim, 13},
		{"hint", `{"from":0,"to":50000000}`, 7, lim, 7},
		{"hint above numbers", `{"from":10,"to":13}`, 50, lim, 3},
		{"limit", `{"from":0,"to":9007199254740992}`, 0, lim, lim.MaxTasks},
		{"small limit", `{"from":0,"to":50000000}`, 0, Limits{MaxTasks: 4}, 4},
		{"exponent form", `{"from":0,"to":1e6}`, 0, lim, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ins, err := primesKind{}.Split(json.RawMessage(tt.input), tt.hint, tt.lim)
			if err != nil {
				t.Fatal(err)
			}
			if len(ins) != tt.wantTasks {
				t.Fatalf("%d tasks, want %d", len(ins), tt.wantTasks)
			}
			from, to, _ := parsePrimesRange("", json.RawMessage(tt.input))
			next := from
			for i, in := range ins {
				f, tk, err := parsePrimesRange("task", in)
				if err != nil {
					t.Fatalf("task %d input %s: %v", i, in, err)
				}
				if f != next {
					t.Fatalf("task %d starts at %d, want %d", i, f, next)
				}
				next = tk
			}
			if next != to {
				t.Fatalf("tasks end at %d, want %d", next, to)
			}
		})
	}
}

func TestPrimesRejects(t *testing.T) {
	tests := []struct {
		input string
		want  error
	}{
		{`{"from":0}`, ErrUnprocessable},
		{`{"from":5,"to":5}`, ErrUnprocessable},
		{`{"from":6,"to":5}`, ErrUnprocessable},
		{`{"from":-1,"to":5}`, ErrUnprocessable},
		{`{"from":0.5,"to":5}`, ErrUnprocessable},
		{`{"from":0,"to":9007199254740993}`, ErrUnprocessable},
		{`{"from":0,"to":1e300}`, ErrUnprocessable},
		{`{"from":0,"to":1e400}`, ErrUnprocessable},
		{`{"from":"0","to":5}`, ErrInvalidInput},
		{`{"from":0,"to":5,"step":1}`, ErrInvalidInput},
		{`[0,5]`, ErrInvalidInput},
		{`not json`, ErrInvalidInput},
		{`{"from":0,"to":5`, ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			_, err := primesKind{}.Split(json.RawMessage(tt.input), 0, DefaultLimits())
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			t.Log(err)
		})
	}
}

func TestPrimesSplitRunReduce(t *testing.T) {
	for _, tt := range []struct {
		input string
		hint  int
		want  string
	}{
		{`{"from":0,"to":10000000}`, 0, `{"count":664579}`},
		{`{"from":0,"to":10000000}`, 7, `{"count":664579}`},
		{`{"from":0,"to":100}`, 100, `{"count":25}`},
		{`{"from":9007199254739992,"to":9007199254740992}`, 3, `{"count":25}`},
	} {
		got := splitRunReduce(t, "primes", tt.input, tt.hint)
		if string(got) != tt.want {
			t.Errorf("%s hint %d: result %s, want %s", tt.input, tt.hint, got, tt.want)
		}
	}
}

func TestPrimesReduceRejects(t *testing.T) {
	input := json.RawMessage(`{"from":0,"to":100}`)
	tests := map[string][]json.RawMessage{
		"no outputs":     {},
		"missing":        {json.RawMessage(`{"count":10}`), nil},
		"malformed":      {json.RawMessage(`{"count":10}`), json.RawMessage(`{"count":`)},
		"no count":       {json.RawMessage(`{}`)},
		"negative":       {json.RawMessage(`{"count":-1}`)},
		"over task size": {json.RawMessage(`{"count":51}`), json.RawMessage(`{"count":0}`)},
		"more than nums": make([]json.RawMessage, 101),
	}
	for name, outs := range tests {
		t.Run(name, func(t *testing.T) {
			if res, err := (primesKind{}).Reduce("j", input, outs); err == nil {
				t.Fatalf("reduced to %s, want an error", res)
			}
		})
	}
}

func TestPrimesSplitReduceProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		from := rapid.Uint64Range(0, 20000).Draw(t, "from")
		to := rapid.Uint64Range(from+1, from+20000).Draw(t, "to")
		hint := rapid.IntRange(0, 300).Draw(t, "hint")
		input := json.RawMessage(fmt.Sprintf(`{"from":%d,"to":%d}`, from, to))
		ins, err := primesKind{}.Split(input, hint, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		res, err := primesKind{}.Reduce("j", input, runAll(t, primesKind{}, ins))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`{"count":%d}`, countPrimesByTest(from, to)); string(res) != want {
			t.Fatalf("[%d, %d) in %d tasks: %s, want %s", from, to, len(ins), res, want)
		}
	})
}

func TestEvenPartProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.Uint64Range(1, 1<<53).Draw(t, "n")
		k := rapid.Uint64Range(1, min(n, 1000)).Draw(t, "k")
		var next uint64
		for i := range k {
			start, size := evenPart(n, k, i)
			if start != next || size < n/k || size > n/k+1 {
				t.Fatalf("part %d of %d in %d: start %d size %d, want start %d", i, k, n, start, size, next)
			}
			next += size
		}
		if next != n {
			t.Fatalf("parts cover %d of %d", next, n)
		}
	})
}
