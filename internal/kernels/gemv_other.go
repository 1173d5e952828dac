//go:build !amd64

package kernels

// gemv reports false: only amd64 has a vector matrix-vector kernel here.
func gemv(y, x, w []float32, out, in int) bool { return false }
