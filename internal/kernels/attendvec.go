package kernels

// AttendCachedVec is AttendCached with vector kernels for the scores and
// the weighted sum of the values where the CPU has AVX-512 and the head
// size is a multiple of 16 (other cases run AttendCached). Its sums run in
// another order than AttendCached's, so the two agree within float32
// rounding, not bit for bit.
func AttendCachedVec(out, scores, q, keys, values []float32, stride int) {
	if !attendVec(out, scores, q, keys, values, stride) {
		AttendCached(out, scores, q, keys, values, stride)
	}
}
