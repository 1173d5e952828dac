package kernels

// ArgMax returns the index of the first largest element of x and that
// element; ok is false when x is empty or holds a NaN (then i is the index of
// the first NaN, −1 for an empty x). It gives what a loop keeping the first
// element greater than the best so far gives, on every kernel level: a
// sampler's greedy choice over a vocabulary of logits, which AVX-512 and
// AVX2 run several times faster than that loop.
func ArgMax(x []float32) (i int, v float32, ok bool) {
	if len(x) == 0 {
		return -1, 0, false
	}
	if m, nan, n := maxVec(x); n > 0 {
		if nan {
			return firstNaN(x), 0, false
		}
		for _, u := range x[n:] {
			if u != u {
				return firstNaN(x), 0, false
			}
			m = max(m, u)
		}
		i = indexOf(x, m)
		return i, x[i], true
	}
	best := 0
	for j, u := range x {
		if u != u {
			return j, 0, false
		}
		if u > x[best] {
			best = j
		}
	}
	return best, x[best], true
}

// firstNaN returns the index of the first NaN of x, which has one.
func firstNaN(x []float32) int {
	for j, u := range x {
		if u != u {
			return j
		}
	}
	return -1
}

// indexOf returns the index of the first element of x equal to v, which x
// holds.
func indexOf(x []float32, v float32) int {
	j, done := indexVec(x, v)
	if j >= 0 {
		return j
	}
	for j, u := range x[done:] {
		if u == v {
			return done + j
		}
	}
	return -1
}
