//go:build !amd64

package kernels

func attendFastVec() bool { return false }

func attendScores16(scores *float32, blocks int, q *float32, chunks int, keys *float32, stride int, scale float32) {
	panic("kernels: attendScores16 without assembly")
}

func attendValues4(out *float32, chunks int, w *float32, n int, values *float32, stride int) {
	panic("kernels: attendValues4 without assembly")
}
