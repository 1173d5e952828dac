package nf4

import (
	"fmt"
	"testing"

	"github.com/golora/golora/internal/blas"
	"github.com/golora/golora/internal/parallel"
)

// benchShapes are the [rows, cols] weights of the benchmarks: a LLaMA-7B
// attention projection, and the feed-forward and classifier weights of the
// stories15M (dim 288, hidden 768, vocabulary 32000) and stories110M (dim
// 768, hidden 2048) models.
var benchShapes = [][2]int{{4096, 4096}, {288, 768}, {768, 2048}, {32000, 288}}

// reportGBs reports bytes per operation as GB/s.
func reportGBs(b *testing.B, bytes int) {
	b.ReportMetric(float64(bytes)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

// BenchmarkDequantize compares decoding a whole NF4 weight to float32 with
// copying the same float32 weight: the ceiling for writing that much memory.
// Both split the work across GOMAXPROCS goroutines the same way (run with
// -cpu 1,2); GB/s counts the float32 bytes written.
func BenchmarkDequantize(b *testing.B) {
	for _, shape := range benchShapes {
		rows, cols := shape[0], shape[1]
		n := rows * cols
		w := gaussian(1, n, 0.02)
		dst := make([]float32, n)
		m, err := Quantize(w, rows, cols, Options{})
		if err != nil {
			b.Fatal(err)
		}
		copy(dst, w) // fault the pages in before timing
		b.Run(fmt.Sprintf("%dx%d/copy", rows, cols), func(b *testing.B) {
			for b.Loop() {
				parallelFor(n, parallelMinElems, m.blockSize, func(lo, hi int) { copy(dst[lo:hi], w[lo:hi]) })
			}
			reportGBs(b, 4*n)
		})
		b.Run(fmt.Sprintf("%dx%d/nf4", rows, cols), func(b *testing.B) {
			for b.Loop() {
				if err := m.Dequantize(dst); err != nil {
					b.Fatal(err)
				}
			}
			reportGBs(b, 4*n)
		})
	}
}

// BenchmarkQuantize measures quantizing a 4096×4096 float32 weight, with and
// without double quantization; GB/s counts the float32 bytes read.
func BenchmarkQuantize(b *testing.B) {
	const side = 4096
	w := gaussian(1, side*side, 0.02)
	for _, dq := range []bool{true, false} {
		b.Run(fmt.Sprintf("dq=%v", dq), func(b *testing.B) {
			var q *Matrix
			for b.Loop() {
				var err error
				if q, err = Quantize(w, side, side, Options{DisableDoubleQuant: !dq}); err != nil {
					b.Fatal(err)
				}
			}
			reportGBs(b, 4*side*side)
			b.ReportMetric(q.BitsPerParam(), "bits/param")
		})
	}
}

// BenchmarkMulT compares the fused 4-bit product y = x·Wᵀ with the float32
// product on the same weight already decoded (internal/blas, the float32
// product of the same build), for 1 (a mat-vec), 4 and 16 rows of x. Both
// split W's rows across GOMAXPROCS goroutines (run with -cpu 1,2). GB/s
// counts float32 weight bytes per second for both, so their ratio is the
// speed-up.
func BenchmarkMulT(b *testing.B) {
	for _, shape := range benchShapes {
		rows, cols := shape[0], shape[1]
		m, err := Quantize(gaussian(2, rows*cols, 0.02), rows, cols, Options{})
		if err != nil {
			b.Fatal(err)
		}
		dense := make([]float32, rows*cols)
		if err := m.Dequantize(dense); err != nil {
			b.Fatal(err)
		}
		for _, n := range []int{1, 4, 16} {
			x := gaussian(3, n*cols, 1)
			y := make([]float32, n*rows)
			b.Run(fmt.Sprintf("%dx%d/n=%d/float32", rows, cols, n), func(b *testing.B) {
				for b.Loop() {
					denseMulT(y, x, dense, n, rows, cols)
				}
				reportGBs(b, 4*rows*cols)
			})
			b.Run(fmt.Sprintf("%dx%d/n=%d/nf4", rows, cols, n), func(b *testing.B) {
				for b.Loop() {
					if err := m.MulT(y, x, n); err != nil {
						b.Fatal(err)
					}
				}
				reportGBs(b, 4*rows*cols)
			})
		}
	}
}

// denseMulT is y = x·Wᵀ for a float32 W, split across goroutines by rows of
// W exactly as MulT is.
func denseMulT(y, x, w []float32, n, rows, cols int) {
	product := func(r0, r1 int) {
		blas.Sgemm(false, true, n, r1-r0, cols, 1, x, cols, w[r0*cols:], cols, 0, y[r0:], rows)
	}
	if float64(n)*float64(rows)*float64(cols) < parallelMinMACs {
		product(0, rows)
		return
	}
	parallel.For(rows, 0, 1, product)
}
