package kernels

// attendVec is AttendCachedVec's AVX-512 path; it reports false, doing
// nothing, when the CPU or the head size has none.
func attendVec(out, scores, q, keys, values []float32, stride int) bool {
	hd := len(q)
	if !expUseAVX512 || hd%16 != 0 || hd == 0 || len(scores) == 0 {
		return false
	}
	n := len(scores)
	_, _ = keys[(n-1)*stride+hd-1], values[(n-1)*stride+hd-1]
	out = out[:hd]
	attnScoresAVX512(&scores[0], &q[0], &keys[0], stride, n, hd/16, attentionScale(hd))
	scaleFloats(scores, float32(1/expShifted(scores, scores, rowMax(scores))))
	attnSumAVX512(&out[0], &scores[0], &values[0], stride, n, hd/16)
	return true
}

// attnScoresAVX512 writes scores[t] = scale·q·keys[t·stride:][:16·chunks]
// for t < n; n > 0, chunks > 0.
//
//go:noescape
func attnScoresAVX512(scores, q, keys *float32, stride, n, chunks int, scale float32)

// attnSumAVX512 writes out[:16·chunks] = Σ_t p[t]·values[t·stride:][:16·chunks]
// for t < n; n > 0, chunks > 0.
//
//go:noescape
func attnSumAVX512(out, p, values *float32, stride, n, chunks int)
