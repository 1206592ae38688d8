package tasks

import "testing"

func TestFmix32IsMurmurFinalizer(t *testing.T) {
	// Known values of MurmurHash3's fmix32.
	for in, want := range map[uint32]uint32{0: 0, 1: 0x514e28b7} {
		if got := fmix32(in); got != want {
			t.Errorf("fmix32(%#x) = %#x, want %#x", in, got, want)
		}
	}
}

func TestTaskRandUniform(t *testing.T) {
	// A coarse check that the generator is not broken: the top 4 bits of
	// 160000 outputs fill 16 buckets evenly (chi-squared, 15 degrees of
	// freedom; 50 is far beyond the 0.1% tail at 37.7).
	r := newTaskRand(7, 3)
	var buckets [16]float64
	const n = 160000
	for range n {
		buckets[r.next()>>28]++
	}
	chi := 0.0
	for _, b := range buckets {
		d := b - n/16
		chi += d * d / (n / 16)
	}
	if chi > 50 {
		t.Errorf("chi-squared %v over 16 buckets: %v", chi, buckets)
	}
}

func TestTaskRandNeverAllZero(t *testing.T) {
	for seed := range uint32(64) {
		for index := range uint32(64) {
			r := newTaskRand(seed, index)
			if r.s0|r.s1|r.s2|r.s3 == 0 {
				t.Fatalf("seed %d index %d: all-zero state", seed, index)
			}
		}
	}
}
