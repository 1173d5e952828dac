package kernels

import "github.com/golora/golora/internal/cpu"

// attendFastWork bounds the multiply-adds of one AVX2 call of
// AttendCachedFast's kernels, some microseconds' work (assembly is not
// preemptible; a long cache times a wide head is more).
const attendFastWork = 1 << 16

// attendFastScores writes the scores of the keys of the whole blocks of
// 16 (AVX-512) or 8 (AVX2) of scores and returns how many it wrote; the
// head dimension len(q) is a multiple of 16 and the keys are in range.
func attendFastScores(l cpu.Level, scores, q, keys []float32, stride int, scale float32) int {
	hd := len(q)
	if l >= cpu.AVX512 {
		n16 := len(scores) &^ 15
		if n16 > 0 {
			attendScores16(&scores[0], n16/16, &q[0], hd/16, &keys[0], 4*stride, scale)
		}
		return n16
	}
	n8 := len(scores) &^ 7
	step := max(1, attendFastWork/(8*hd)) * 8
	for lo := 0; lo < n8; lo += step {
		k := min(step, n8-lo)
		attendScores8AVX2(&scores[lo], k/8, &q[0], hd/8, &keys[lo*stride], 4*stride, scale)
	}
	return n8
}

// attendFastValues writes into out (the head dimension, a multiple of 16)
// the sum of the len(w) values weighted by w, in four interleaved partial
// sums; the values are in range.
func attendFastValues(l cpu.Level, out, w, values []float32, stride int) {
	chunks, n := len(out)/16, len(w)
	if l >= cpu.AVX512 {
		attendValues4(&out[0], chunks, &w[0], n, &values[0], 4*stride)
		return
	}
	step := max(1, attendFastWork/(16*n))
	for c := 0; c < chunks; c += step {
		attendValues4AVX2(&out[16*c], min(step, chunks-c), &w[0], n, &values[16*c], 4*stride)
	}
}

// attendScores16 writes the scores of 16·blocks keys, stride bytes apart,
// against the query q of 16·chunks elements, times scale;
// blocks, chunks > 0.
//
//go:noescape
func attendScores16(scores *float32, blocks int, q *float32, chunks int, keys *float32, stride int, scale float32)

// attendValues4 writes into out (16·chunks elements) the sum of the n
// values, stride bytes apart, weighted by w; chunks, n > 0.
//
//go:noescape
func attendValues4(out *float32, chunks int, w *float32, n int, values *float32, stride int)

// attendScores8AVX2 is attendScores16 with AVX2 on 8·blocks keys, the
// query in chunks of 8 elements.
//
//go:noescape
func attendScores8AVX2(scores *float32, blocks int, q *float32, chunks int, keys *float32, stride int, scale float32)

// attendValues4AVX2 is attendValues4 with AVX2.
//
//go:noescape
func attendValues4AVX2(out *float32, chunks int, w *float32, n int, values *float32, stride int)
