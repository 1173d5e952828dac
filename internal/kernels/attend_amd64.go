package kernels

import "github.com/golora/golora/internal/cpu"

// attendScoresAsm is attendScores for a head dimension that is a multiple of
// 16, with the assembly of level l (AVX2 or AVX-512).
func attendScoresAsm(l cpu.Level, scores, q, keys []float32, stride int, scale float32) {
	if l >= cpu.AVX512 {
		attendScoresAVX512(&scores[0], len(scores), &q[0], len(q), &keys[0], 4*stride, scale)
		return
	}
	attendScoresAVX2(&scores[0], len(scores), &q[0], len(q), &keys[0], 4*stride, scale)
}

// attendValuesAsm is attendValues for a head dimension that is a multiple
// of 16, with the assembly of level l (AVX2 or AVX-512).
func attendValuesAsm(l cpu.Level, out, w, values []float32, stride int) {
	if l >= cpu.AVX512 {
		attendValuesAVX512(&out[0], len(out), &w[0], len(w), &values[0], 4*stride)
		return
	}
	attendValuesAVX2(&out[0], len(out), &w[0], len(w), &values[0], 4*stride)
}

// attendScoresAVX512 writes n scores of the hd-element query q (hd a
// positive multiple of 16) against keys stride bytes apart.
//
//go:noescape
func attendScoresAVX512(scores *float32, n int, q *float32, hd int, keys *float32, stride int, scale float32)

// attendScoresAVX2 is attendScoresAVX512 with AVX2.
//
//go:noescape
func attendScoresAVX2(scores *float32, n int, q *float32, hd int, keys *float32, stride int, scale float32)

// attendValuesAVX512 writes into out (hd elements, a positive multiple of
// 16) the sum of the n values, stride bytes apart, weighted by w.
//
//go:noescape
func attendValuesAVX512(out *float32, hd int, w *float32, n int, values *float32, stride int)

// attendValuesAVX2 is attendValuesAVX512 with AVX2.
//
//go:noescape
func attendValuesAVX2(out *float32, hd int, w *float32, n int, values *float32, stride int)
