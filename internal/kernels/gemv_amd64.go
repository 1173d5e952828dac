package kernels

// gemv computes y = w·x for w [out, in] row-major, four rows of w a call in
// AVX-512 or AVX2 (side by side, so that each load of x serves four rows,
// or with AVX2 and rows of up to gemvSeqMaxCols one after the other); it
// reports false, doing nothing, when this CPU or shape has no vector kernel.
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
	seq := in <= gemvSeqMaxCols
	r := 0
	for ; r+4 <= out; r += 4 {
		switch {
		case useAVX512:
			gemv4AVX512(&w[r*in], in, &x[0], n, &y[r])
		case seq:
			gemv4SeqAVX2(&w[r*in], in, &x[0], n, &y[r])
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

// gemvSeqMaxCols is the longest row gemv4SeqAVX2 is for. Four rows read
// side by side are four streams, which the hardware prefetcher follows
// badly when they are short; read one after the other they are one. On an
// AVX2 Zen 4 (BenchmarkFloat32MatVec, one thread, 2 alternated rounds,
// GB/s of the side-by-side kernel / the row-by-row one): the stories15M
// head, 32000×288 from memory, 28.6–29.3 / 34.6–35.2 (gonum's Sgemv 21.6–
// 25.3, and 13.7–15.4 side by side without prefetching); 768×2048 56.7–57.1
// / 62.8–64.4; 288×768 and 768×768 (cache-resident) 66.7–69.7 / 63.5–66.8;
// 4096×4096 24.7–25.0 / 21.5–21.6. A stories110M-shaped float32 model
// decodes at 58–60 tokens/s on one thread row by row, as with gonum's
// Sgemv, against 48 with the side-by-side kernel.
const gemvSeqMaxCols = 2048

// gemv4AVX2 is gemv4AVX512 in AVX2 with FMA; n is a positive multiple of 8.
//
//go:noescape
func gemv4AVX2(w *float32, ld int, x *float32, n int, y *float32)

// gemv4SeqAVX2 is gemv4AVX2 reading the four rows one after the other.
//
//go:noescape
func gemv4SeqAVX2(w *float32, ld int, x *float32, n int, y *float32)
