package kernels

import "github.com/golora/golora/internal/cpu"

// AttendCachedFast computes what AttendCached does, the attention of one
// query head over len(scores) cached positions, with kernels that give up
// AttendCached's fixed order of additions (the same bits on every kernel
// level) for speed: on AVX-512 (AVX2) with a head dimension that is a
// multiple of 16, the scores of 16 (8) keys at a time, their sums folded
// together, and the weighted values in four interleaved partial sums. The
// results agree with AttendCached's within float32 rounding; elsewhere it
// is AttendCached. A batch of decoding sequences runs one such attention per
// token and head, against short caches: AttendCached's one key at a time,
// a chain of dependent additions each, is then a good part of a step.
func AttendCachedFast(out, scores, q, keys, values []float32, stride int) {
	hd, n := len(q), len(scores)
	l := vectorLevel()
	if l == cpu.Generic || hd%16 != 0 || n == 0 {
		AttendCached(out, scores, q, keys, values, stride)
		return
	}
	_ = keys[(n-1)*stride+hd-1]
	_ = values[(n-1)*stride+hd-1]
	out = out[:hd]
	scale := attentionScale(hd)
	done := attendFastScores(l, scores, q, keys, stride, scale)
	if done < n {
		attendScores(l, scores[done:], q, keys[done*stride:], stride, scale)
	}
	softmax(scores)
	attendFastValues(l, out, scores, values, stride)
}
