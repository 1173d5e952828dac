package kernels

// gemv computes y = w·x for w [out, in] row-major, four rows of w at a time
// in AVX-512 or AVX2 (each load of x serves four rows); it reports false,
// doing nothing, when this CPU or shape has no vector kernel.
func gemv(y, x, w []float32, out, in int) bool {
	step := 16
	if !useAVX512 {
		step = 8
	}
	if !useAVX2 || in < step || out < 4 {
		return false
	}
	y, x, w = y[:out], x[:in], w[:out*in]
	n := in &^ (step - 1)
	r := 0
	for ; r+4 <= out; r += 4 {
		if useAVX512 {
			gemv4AVX512(&w[r*in], in, &x[0], n, &y[r])
		} else {
			gemv4AVX2(&w[r*in], in, &x[0], n, &y[r])
		}
		if n < in {
			for i := r; i < r+4; i++ {
				y[i] += Dot(x[n:], w[i*in+n:(i+1)*in])
			}
		}
	}
	for ; r < out; r++ {
		y[r] = Dot(x, w[r*in:(r+1)*in])
	}
	return true
}

// gemv4AVX512 writes into y[0:4] the dot products of x[:n] with the four
// rows of w that start ld elements apart; n is a positive multiple of 16.
//
//go:noescape
func gemv4AVX512(w *float32, ld int, x *float32, n int, y *float32)

// gemv4AVX2 is gemv4AVX512 in AVX2 with FMA; n is a positive multiple of 8.
//
//go:noescape
func gemv4AVX2(w *float32, ld int, x *float32, n int, y *float32)
