package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
)

// maxSafeInt is 2^53, the largest integer below which every integer is
// exactly representable as a JavaScript Number. Inputs that browsers read
// as Numbers are bounded by it.
const maxSafeInt = 1 << 53

// primesDefaultTaskSize is how many numbers one primes task covers by
// default: a fraction of a second in a browser even near 2^53.
const primesDefaultTaskSize = 4_000_000

// primesSegment is the length of one sieve segment. The JavaScript twin
// may use another length: only the counts have to agree.
const primesSegment = 1 << 20

// primesKind counts the primes p with from ≤ p < to.
//
//	job input   {"from": 0, "to": 50000000}   0 ≤ from < to ≤ 2^53
//	task input  {"from": F, "to": T}          a sub-range
//	task output {"count": N}
//	result      {"count": N}
type primesKind struct{}

func init() { register(primesKind{}) }

func (primesKind) Name() string { return "primes" }

func parsePrimesRange(what string, data json.RawMessage) (from, to uint64, err error) {
	o, err := parseObject(what, data, "from", "to")
	if err != nil {
		return 0, 0, err
	}
	if from, err = o.uint("from", maxSafeInt); err != nil {
		return 0, 0, err
	}
	if to, err = o.uint("to", maxSafeInt); err != nil {
		return 0, 0, err
	}
	if from >= to {
		return 0, 0, fmt.Errorf("%w: %s: from (%d) must be less than to (%d)", ErrUnprocessable, what, from, to)
	}
	return from, to, nil
}

func (primesKind) Split(input json.RawMessage, tasks int, lim Limits) ([]json.RawMessage, error) {
	from, to, err := parsePrimesRange("primes input", input)
	if err != nil {
		return nil, err
	}
	n := to - from
	k := uint64(tasks)
	if tasks <= 0 {
		k = (n + primesDefaultTaskSize - 1) / primesDefaultTaskSize
	}
	k = clampTasks(k, n, lim)
	out := make([]json.RawMessage, k)
	for i := range k {
		start, size := evenPart(n, k, i)
		b := make([]byte, 0, 48)
		b = append(b, `{"from":`...)
		b = strconv.AppendUint(b, from+start, 10)
		b = append(b, `,"to":`...)
		b = strconv.AppendUint(b, from+start+size, 10)
		b = append(b, '}')
		out[i] = b
	}
	return out, nil
}

func (primesKind) Reduce(_ string, input json.RawMessage, outputs []json.RawMessage) (json.RawMessage, error) {
	from, to, err := parsePrimesRange("primes input", input)
	if err != nil {
		return nil, err
	}
	k := uint64(len(outputs))
	if k == 0 || k > to-from {
		return nil, fmt.Errorf("primes: %d outputs cannot cover %d numbers", k, to-from)
	}
	var total uint64
	for i, out := range outputs {
		_, size := evenPart(to-from, k, uint64(i))
		o, err := parseObject(fmt.Sprintf("primes task %d output", i), out, "count")
		if err != nil {
			return nil, err
		}
		c, err := o.uint("count", size)
		if err != nil {
			return nil, err
		}
		total += c
	}
	return json.RawMessage(`{"count":` + strconv.FormatUint(total, 10) + `}`), nil
}

func (primesKind) Run(ctx context.Context, taskInput json.RawMessage) (json.RawMessage, error) {
	from, to, err := parsePrimesRange("primes task", taskInput)
	if err != nil {
		return nil, err
	}
	c, err := countPrimes(ctx, from, to)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(`{"count":` + strconv.FormatUint(c, 10) + `}`), nil
}

// countPrimes counts the primes in [from, to) with a segmented sieve of
// Eratosthenes over odd numbers, using the base primes up to sqrt(to-1).
// Offsets are taken relative to each segment's start, so nothing overflows
// even at 2^53 (and the same arithmetic is exact in JavaScript).
func countPrimes(ctx context.Context, from, to uint64) (uint64, error) {
	if to <= 2 || from >= to {
		return 0, nil
	}
	var count uint64
	if from <= 2 {
		count = 1 // 2, the one even prime
	}
	base := basePrimes(isqrt(to - 1))
	seg := make([]bool, min(to-from, primesSegment))
	for lo := from; lo < to; lo += primesSegment {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("count primes: %w", err)
		}
		n := min(to-lo, primesSegment)
		count += sieveSegment(seg[:n], lo, base, nil)
	}
	return count, nil
}

// sieveSegment marks the odd composites of [lo, lo+len(seg)) using the odd
// primes of base (which must include every prime up to the square root of
// the segment's last number) and returns how many odd primes ≥ 3 it holds.
// With collect non-nil, it also appends them to *collect.
func sieveSegment(seg []bool, lo uint64, base []uint32, collect *[]uint32) uint64 {
	clear(seg)
	n := uint64(len(seg))
	hi := lo + n
	for _, p32 := range base {
		p := uint64(p32)
		if p == 2 {
			continue
		}
		if p*p >= hi {
			break
		}
		var off uint64 // offset of the first multiple of p to strike
		if pp := p * p; pp >= lo {
			off = pp - lo
		} else if r := lo % p; r != 0 {
			off = p - r
		}
		if (lo+off)%2 == 0 {
			off += p // even multiples are never looked at
		}
		for ; off < n; off += 2 * p {
			seg[off] = true
		}
	}
	first := uint64(0)
	if lo%2 == 0 {
		first = 1
	}
	if lo+first < 3 {
		// 1 is not a prime; 3 is the first odd one.
		first = 3 - lo
	}
	var count uint64
	for off := first; off < n; off += 2 {
		if !seg[off] {
			count++
			if collect != nil {
				*collect = append(*collect, uint32(lo+off))
			}
		}
	}
	return count
}

// isqrt returns ⌊√x⌋ for x ≤ 2^53.
func isqrt(x uint64) uint64 {
	r := uint64(math.Sqrt(float64(x)))
	for r*r > x {
		r--
	}
	for (r+1)*(r+1) <= x {
		r++
	}
	return r
}

// The base primes are kept between calls: every task near 2^53 needs the
// 5.4 million primes up to 9.5e7, and sieving them costs more than the
// task. The cache only grows, to at most about 22 MB.
var baseCache struct {
	sync.Mutex
	limit  uint64
	primes []uint32
}

// basePrimes returns the primes ≤ limit, sorted. The slice is shared:
// callers must not modify it.
func basePrimes(limit uint64) []uint32 {
	baseCache.Lock()
	defer baseCache.Unlock()
	if limit > baseCache.limit {
		// Grow geometrically so that increasing ranges do not re-sieve
		// every time; never beyond what a range below 2^53 can need.
		grow := min(max(limit, 2*baseCache.limit), isqrt(maxSafeInt)+1)
		baseCache.primes = primesUpTo(grow)
		baseCache.limit = grow
	}
	ps := baseCache.primes
	i := sort.Search(len(ps), func(i int) bool { return uint64(ps[i]) > limit })
	return ps[:i:i]
}

// primesUpTo lists the primes ≤ limit. Small limits use a plain sieve;
// large ones sieve segment by segment with the primes up to √limit, so
// memory stays at one segment plus the list.
func primesUpTo(limit uint64) []uint32 {
	if limit < 2 {
		return nil
	}
	if limit <= 1<<16 {
		composite := make([]bool, limit+1)
		var ps []uint32
		for i := uint64(2); i <= limit; i++ {
			if composite[i] {
				continue
			}
			ps = append(ps, uint32(i))
			for j := i * i; j <= limit; j += i {
				composite[j] = true
			}
		}
		return ps
	}
	small := primesUpTo(isqrt(limit))
	// π(x) < 1.25506·x/ln x for x > 1.
	ps := make([]uint32, 0, int(1.25506*float64(limit)/math.Log(float64(limit)))+1)
	ps = append(ps, 2)
	seg := make([]bool, primesSegment)
	for lo := uint64(0); lo <= limit; lo += primesSegment {
		n := min(limit+1-lo, primesSegment)
		sieveSegment(seg[:n], lo, small, &ps)
	}
	return ps
}

// Helpers shared by the built-in kinds: decoding inputs with clear errors,
// and cutting n things into k nearly equal parts.

// evenPart returns the start and size of part i when n things are cut into
// k parts whose sizes differ by at most one (the first n%k parts are one
// larger). Splitters and reducers both use it, so a reducer can tell how
// big each task was from the input and the number of outputs alone.
func evenPart(n, k, i uint64) (start, size uint64) {
	q, r := n/k, n%k
	start = i*q + min(i, r)
	size = q
	if i < r {
		size++
	}
	return start, size
}

// clampTasks bounds a wanted number of tasks by what the input allows
// (n things, so at most n tasks) and by the job limits.
func clampTasks(k, n uint64, lim Limits) uint64 {
	k = min(k, n)
	if lim.MaxTasks > 0 {
		k = min(k, uint64(lim.MaxTasks))
	}
	return max(k, 1)
}

// object is a decoded JSON object whose fields are read one by one, so
// that each error names its field. Type errors wrap ErrInvalidInput; values
// out of range wrap ErrUnprocessable.
type object struct {
	what   string // "primes input", for error messages
	fields map[string]json.RawMessage
}

// parseObject decodes data as a JSON object with no fields but allowed (a
// misspelt field is an error rather than silently ignored).
func parseObject(what string, data json.RawMessage, allowed ...string) (object, error) {
	o := object{what: what}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return o, fmt.Errorf("%w: %s must be a JSON object", ErrInvalidInput, what)
	}
	if err := json.Unmarshal(trimmed, &o.fields); err != nil {
		return o, fmt.Errorf("%w: %s: %v", ErrInvalidInput, what, err)
	}
	for name := range o.fields {
		known := false
		for _, a := range allowed {
			known = known || name == a
		}
		if !known {
			return o, fmt.Errorf("%w: %s: unknown field %q (fields: %v)", ErrInvalidInput, what, name, allowed)
		}
	}
	return o, nil
}

// has reports whether the field is present and not null.
func (o object) has(name string) bool {
	v, ok := o.fields[name]
	return ok && !bytes.Equal(v, []byte("null"))
}

// number returns the field's JSON number literal.
func (o object) number(name string) (string, error) {
	if !o.has(name) {
		return "", fmt.Errorf("%w: %s: %s is required", ErrUnprocessable, o.what, name)
	}
	v := o.fields[name]
	if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		return "", fmt.Errorf("%w: %s: %s must be a number, got %s", ErrInvalidInput, o.what, name, abbreviate(v))
	}
	return string(v), nil
}

// uint reads a required integer in [0, max]. Integral values written with
// a fraction or an exponent (5.0, 1e9) are accepted.
func (o object) uint(name string, max uint64) (uint64, error) {
	s, err := o.number(name)
	if err != nil {
		return 0, err
	}
	if v, err := strconv.ParseUint(s, 10, 64); err == nil {
		if v > max {
			return 0, fmt.Errorf("%w: %s: %s is %s, the maximum is %d", ErrUnprocessable, o.what, name, s, max)
		}
		return v, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case f < 0 || s[0] == '-' && f != 0:
		return 0, fmt.Errorf("%w: %s: %s must not be negative, got %s", ErrUnprocessable, o.what, name, s)
	case math.IsInf(f, 0) || err == nil && f > float64(max):
		return 0, fmt.Errorf("%w: %s: %s is %s, the maximum is %d", ErrUnprocessable, o.what, name, s, max)
	case err != nil || f != math.Trunc(f):
		return 0, fmt.Errorf("%w: %s: %s must be an integer, got %s", ErrUnprocessable, o.what, name, s)
	}
	return uint64(f), nil
}

// float reads a required finite number.
func (o object) float(name string) (float64, error) {
	s, err := o.number(name)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && math.IsInf(f, 0) {
		return 0, fmt.Errorf("%w: %s: %s is out of the range of a float64: %s", ErrUnprocessable, o.what, name, s)
	}
	// A literal too small for a float64 rounds to zero, as in JavaScript.
	return f, nil
}

// abbreviate keeps error messages short when a field holds a large value.
func abbreviate(v []byte) string {
	if len(v) > 40 {
		return string(v[:37]) + "..."
	}
	return string(v)
}
