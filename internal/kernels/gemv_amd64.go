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
	// Four short rows are four short streams, which the hardware
	// prefetcher follows badly, so the AVX2 kernel fetches the next four
	// rows itself.
	next := in <= gemvNextMaxCols
	r := 0
	for ; r+4 <= out; r += 4 {
		switch {
		case useAVX512:
			gemv4AVX512(&w[r*in], in, &x[0], n, &y[r])
		case next:
			gemv4NextAVX2(&w[r*in], in, &x[0], n, &y[r])
		default:
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

// gemvNextMaxCols is the longest row gemv4NextAVX2 is for. Measured on an
// AVX2 Zen 4 (BenchmarkFloat32MatVec, one thread, 3 alternated rounds):
// with the prefetch the stories15M head (32000×288, 37 MB, read from
// memory) went from 13.7–15.4 to 22.9–29.1 GB/s (gonum's Sgemv: 19.8–21.2),
// 768×768 and 2048×768 from 64–65 to 66–67; 288×768 (0.9 MB) fell from
// 74–77 to 68–70. With rows of 2048 and more it cost a fifth or more
// (768×2048, 4096×4096), so longer rows take gemv4AVX2.
const gemvNextMaxCols = 1024

// gemv4AVX2 is gemv4AVX512 in AVX2 with FMA; n is a positive multiple of 8.
//
//go:noescape
func gemv4AVX2(w *float32, ld int, x *float32, n int, y *float32)

// gemv4NextAVX2 is gemv4AVX2 that also prefetches the four rows after
// these, ld elements apart, into the cache.
//
//go:noescape
func gemv4NextAVX2(w *float32, ld int, x *float32, n int, y *float32)
