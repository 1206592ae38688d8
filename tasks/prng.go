package tasks

import "math/bits"

// taskRand is the pseudo-random generator of the pi kind: xoshiro128**
// seeded through splitmix32. It works on 32-bit words only, so that
// webclient/kinds/pi.js (Math.imul, >>> 0) produces bit-identical streams;
// keep both files in step.
type taskRand struct{ s0, s1, s2, s3 uint32 }

// fmix32 is MurmurHash3's finalizer: a bijection of uint32 that spreads
// every input bit over the whole word.
func fmix32(z uint32) uint32 {
	z = (z ^ z>>16) * 0x85ebca6b
	z = (z ^ z>>13) * 0xc2b2ae35
	return z ^ z>>16
}

// newTaskRand seeds the generator of task index of a job seeded with seed.
// seed ^ fmix32(index) is a bijection of index for a fixed seed, so the
// tasks of one job never share a stream. The four splitmix32 outputs come
// from four distinct states through a bijection, so they cannot all be
// zero (the one state xoshiro must avoid).
func newTaskRand(seed, index uint32) taskRand {
	sm := seed ^ fmix32(index)
	next := func() uint32 {
		sm += 0x9e3779b9
		return fmix32(sm)
	}
	var r taskRand
	r.s0 = next()
	r.s1 = next()
	r.s2 = next()
	r.s3 = next()
	return r
}

// next returns the next 32-bit output of xoshiro128**.
func (r *taskRand) next() uint32 {
	result := bits.RotateLeft32(r.s1*5, 7) * 9
	t := r.s1 << 9
	r.s2 ^= r.s0
	r.s3 ^= r.s1
	r.s1 ^= r.s2
	r.s0 ^= r.s3
	r.s2 ^= t
	r.s3 = bits.RotateLeft32(r.s3, 11)
	return result
}
