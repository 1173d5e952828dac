package kernels

// swigluFinish runs swigluFinishGo on the whole groups of 16 elements in
// AVX-512 and returns how many it did; 0 without AVX-512.
func swigluFinish(dst, gate, up, e []float32) int {
	n := len(gate) &^ 15
	if !useAVX512 || n == 0 {
		return 0
	}
	_, _, _ = dst[n-1], up[n-1], e[n-1]
	swigluFinishAVX512(&dst[0], &gate[0], &up[0], &e[0], n)
	return n
}

// swigluFinishAVX512 is swigluFinishGo on n elements, a multiple of 16.
//
//go:noescape
func swigluFinishAVX512(dst, gate, up, e *float32, n int)

// negAbs writes −|x| into dst for the whole groups of 16 elements in
// AVX-512 and returns how many it did; 0 without AVX-512.
func negAbs(dst, x []float32) int {
	n := len(x) &^ 15
	if !useAVX512 || n == 0 {
		return 0
	}
	_ = dst[n-1]
	negAbsAVX512(&dst[0], &x[0], n)
	return n
}

// negAbsAVX512 sets the sign bit of n elements of x (a multiple of 16) into
// dst.
//
//go:noescape
func negAbsAVX512(dst, x *float32, n int)
