package kernels

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

// attendFastVec reports whether AttendCachedFast has its AVX-512 kernels.
func attendFastVec() bool { return useAVX512 }
