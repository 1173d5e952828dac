package kernels

// swigluFinish runs swigluFinishGo on the whole groups of 16 elements in
// AVX-512, or of 8 in AVX2, and returns how many it did; 0 without either.
func swigluFinish(dst, gate, up, e []float32) int {
	switch {
	case useAVX512 && len(gate) >= 16:
		n := len(gate) &^ 15
		_, _, _ = dst[n-1], up[n-1], e[n-1]
		swigluFinishAVX512(&dst[0], &gate[0], &up[0], &e[0], n)
		return n
	case useAVX2 && len(gate) >= 8:
		n := len(gate) &^ 7
		_, _, _ = dst[n-1], up[n-1], e[n-1]
		swigluFinishAVX2(&dst[0], &gate[0], &up[0], &e[0], n)
		return n
	}
	return 0
}

// swigluFinishAVX512 is swigluFinishGo on n elements, a multiple of 16.
//
//go:noescape
func swigluFinishAVX512(dst, gate, up, e *float32, n int)

// swigluFinishAVX2 is swigluFinishGo on n elements, a multiple of 8.
//
//go:noescape
func swigluFinishAVX2(dst, gate, up, e *float32, n int)

// negAbs writes −|x| into dst for the whole groups of 16 elements in
// AVX-512, or of 8 in AVX2, and returns how many it did; 0 without either.
func negAbs(dst, x []float32) int {
	switch {
	case useAVX512 && len(x) >= 16:
		n := len(x) &^ 15
		_ = dst[n-1]
		negAbsAVX512(&dst[0], &x[0], n)
		return n
	case useAVX2 && len(x) >= 8:
		n := len(x) &^ 7
		_ = dst[n-1]
		negAbsAVX2(&dst[0], &x[0], n)
		return n
	}
	return 0
}

// negAbsAVX512 sets the sign bit of n elements of x (a multiple of 16) into
// dst.
//
//go:noescape
func negAbsAVX512(dst, x *float32, n int)

// negAbsAVX2 sets the sign bit of n elements of x (a multiple of 8) into
// dst.
//
//go:noescape
func negAbsAVX2(dst, x *float32, n int)
