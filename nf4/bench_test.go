package nf4

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/golora/golora/internal/cpu"
	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/internal/parallel"
	gonumblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// benchShapes are the [rows, cols] weights of the benchmarks: a LLaMA-7B
// attention projection, a feed-forward weight and the classifier of the
// stories15M model (dim 288, hidden 768, vocabulary 32000), and the three
// shapes of the stories110M model's block weights (dim 768, hidden 2048:
// attention, w2, w1 and w3).
var benchShapes = [][2]int{{4096, 4096}, {288, 768}, {768, 768}, {768, 2048}, {2048, 768}, {32000, 288}}

// reportGBs reports bytes per operation as GB/s.
func reportGBs(b *testing.B, bytes int) {
	b.ReportMetric(float64(bytes)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

// paired times base and ours alternately, one call each per iteration, so
// that both see the same load on a shared machine, and reports the GB/s of
// each (bytes per call) and ours' speed-up over base: by total time
// ("speedup") and by fastest call ("speedup-min", the calls that ran with
// the machine to themselves, steadier when other processes take the CPUs).
func paired(b *testing.B, bytes int, baseName string, base, ours func()) {
	base() // fault pages in, warm caches
	ours()
	var tb, to time.Duration
	minB, minO := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for b.Loop() {
		t0 := time.Now()
		base()
		t1 := time.Now()
		ours()
		t2 := time.Now()
		tb += t1.Sub(t0)
		to += t2.Sub(t1)
		minB, minO = min(minB, t1.Sub(t0)), min(minO, t2.Sub(t1))
	}
	gb := float64(bytes) * float64(b.N) / 1e9
	b.ReportMetric(gb/tb.Seconds(), baseName+"-GB/s")
	b.ReportMetric(gb/to.Seconds(), "nf4-GB/s")
	b.ReportMetric(tb.Seconds()/to.Seconds(), "speedup")
	b.ReportMetric(minB.Seconds()/minO.Seconds(), "speedup-min")
	b.ReportMetric(0, "ns/op")
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
		b.Run(fmt.Sprintf("%dx%d", rows, cols), func(b *testing.B) {
			paired(b, 4*n, "copy", func() {
				parallelFor(n, parallelMinElems, m.blockSize, func(lo, hi int) { copy(dst[lo:hi], w[lo:hi]) })
			}, func() {
				if err := m.Dequantize(dst); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkQuantize measures quantizing a 4096×4096 float32 weight: first
// the block encoding alone, the scalar code ("scalar-GB/s") and cpu.Best()'s
// kernel ("nf4-GB/s") side by side on one goroutine, then all of Quantize,
// with and without double quantization. GB/s counts the float32 bytes read.
func BenchmarkQuantize(b *testing.B) {
	const side = 4096
	w := gaussian(1, side*side, 0.02)
	packed := make([]byte, len(w)/2)
	absmax := make([]float32, len(w)/DefaultBlockSize)
	b.Run("blocks", func(b *testing.B) {
		paired(b, 4*len(w), "scalar", func() {
			quantizeBlocksRangeAt(cpu.Generic, packed, absmax, w, DefaultBlockSize)
		}, func() {
			quantizeBlocksRangeAt(cpu.Best(), packed, absmax, w, DefaultBlockSize)
		})
	})
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
// product on the same weight already decoded, computed as golora's float32
// decode step does in the default build (float32MulT), for 1 (a mat-vec), 4
// and 16 rows of x, then ("n=1/int8") the mat-vec with x quantized to int8
// (MulVecInt8Rows). Both split W's rows across GOMAXPROCS goroutines (run
// with -cpu 1,2). GB/s counts float32 weight bytes per call for both.
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
			b.Run(fmt.Sprintf("%dx%d/n=%d", rows, cols, n), func(b *testing.B) {
				paired(b, 4*rows*cols, "float32", func() {
					float32MulT(y, x, dense, n, rows, cols)
				}, func() {
					if err := m.MulT(y, x, n); err != nil {
						b.Fatal(err)
					}
				})
			})
		}
		// The same mat-vec with the vector quantized to int8, as a decode
		// step with ActivationsInt8 runs it (llama.cpp's arithmetic for its
		// 4-bit formats): the quantizing of x is timed too. It needs rows
		// of whole 64-value blocks, which the stories15M head (288
		// columns) is not.
		if !m.SupportsInt8() {
			continue
		}
		x := gaussian(3, cols, 1)
		y := make([]float32, rows)
		absmax := m.Absmax()
		var xq Int8Vector
		b.Run(fmt.Sprintf("%dx%d/n=1/int8", rows, cols), func(b *testing.B) {
			paired(b, 4*rows*cols, "float32", func() {
				float32MulT(y, x, dense, 1, rows, cols)
			}, func() {
				if err := xq.Quantize(x); err != nil {
					b.Fatal(err)
				}
				product := func(r0, r1 int) {
					if err := m.MulVecInt8Rows(y, &xq, absmax, r0, r1); err != nil {
						panic(err)
					}
				}
				if float64(rows)*float64(cols) < parallelMinMACs {
					product(0, rows)
					return
				}
				parallel.For(rows, 0, 1, product)
			})
		})
	}
}

// BenchmarkMulTCeiling bounds what BenchmarkMulT's n=1 speed-up can reach:
// the float32 mat-vec of each shape as there ("float32-GB/s") against the
// same number of NF4 weights multiplied at the kernel's compute speed alone
// ("nf4-GB/s": a slice of W's first rows, 16 KiB of codes that stay in L1,
// multiplied again and again until it has covered W's rows, on one
// goroutine). Where the float32 weight stays in cache too, this speed-up is
// the most the fused product can get from its present instructions, with
// its memory traffic costing nothing.
func BenchmarkMulTCeiling(b *testing.B) {
	for _, shape := range benchShapes {
		rows, cols := shape[0], shape[1]
		dense := gaussian(2, rows*cols, 0.02)
		per := min(rows, max(8, (32<<10)/cols))
		slice, err := Quantize(dense[:per*cols], per, cols, Options{})
		if err != nil {
			b.Fatal(err)
		}
		x := gaussian(3, cols, 1)
		y := make([]float32, rows)
		b.Run(fmt.Sprintf("%dx%d", rows, cols), func(b *testing.B) {
			paired(b, 4*rows*cols, "float32", func() {
				float32MulT(y, x, dense, 1, rows, cols)
			}, func() {
				for r := 0; r < rows; r += per {
					n := min(per, rows-r)
					slice.mulTRange(y[:n], x, 1, 0, n)
				}
			})
		})
	}
}

// BenchmarkFloat32MatVec compares the two float32 mat-vecs golora has:
// gonum's Sgemv over cache-sized blocks of rows (gonumMulT, "gonum-GB/s")
// and golora's own AVX-512 gemv (float32MulT, "nf4-GB/s" here: the one
// BenchmarkMulT holds NF4 against, as the faster one at the shapes that
// matter). Both split W's rows across GOMAXPROCS goroutines.
func BenchmarkFloat32MatVec(b *testing.B) {
	for _, shape := range benchShapes {
		rows, cols := shape[0], shape[1]
		w := gaussian(2, rows*cols, 0.02)
		x := gaussian(3, cols, 1)
		y := make([]float32, rows)
		b.Run(fmt.Sprintf("%dx%d", rows, cols), func(b *testing.B) {
			paired(b, 4*rows*cols, "gonum", func() {
				gonumMulT(y, x, w, 1, rows, cols)
			}, func() {
				float32MulT(y, x, w, 1, rows, cols)
			})
		})
	}
}

// float32MulT is y = x·Wᵀ for a float32 W as golora's float32 decode step
// computes it (model/infer's mulRows): kernels.DenseMulT, an AVX-512 gemv
// for one row of x and the packed GEMM for more, split across goroutines
// by rows of W exactly as MulT is.
func float32MulT(y, x, w []float32, n, rows, cols int) {
	if n > 1 {
		kernels.DenseMulT(y, x, w, n, cols, rows)
		return
	}
	product := func(r0, r1 int) {
		kernels.DenseMulT(y[r0:r1], x, w[r0*cols:r1*cols], 1, cols, r1-r0)
	}
	if float64(rows)*float64(cols) < parallelMinMACs {
		product(0, rows)
		return
	}
	parallel.For(rows, 0, 1, product)
}

// gonumMulT is y = x·Wᵀ with gonum's Sgemv, whose dot products are SIMD
// assembly, over blocks of 64 KiB of weight rows that stay in cache while
// every row of x passes; split across goroutines by rows of W as MulT is.
func gonumMulT(y, x, w []float32, n, rows, cols int) {
	product := func(r0, r1 int) {
		var gemv gonum.Implementation
		block := max(4, (16<<10)/cols)
		for o := r0; o < r1; o += block {
			k := min(block, r1-o)
			for i := range n {
				gemv.Sgemv(gonumblas.NoTrans, k, cols, 1, w[o*cols:], cols, x[i*cols:], 1, 0, y[i*rows+o:], 1)
			}
		}
	}
	if float64(n)*float64(rows)*float64(cols) < parallelMinMACs {
		product(0, rows)
		return
	}
	parallel.For(rows, 0, 1, product)
}

// BenchmarkInt8VectorQuantize quantizes a decode step's vector (the
// stories110M widths) at each kernel level.
func BenchmarkInt8VectorQuantize(b *testing.B) {
	for _, n := range []int{768, 2048} {
		xs := gaussian(1, n, 1)
		for _, l := range levels() {
			b.Run(fmt.Sprintf("%d/%v", n, l), func(b *testing.B) {
				var v Int8Vector
				if err := v.Quantize(xs); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(4 * n))
				for b.Loop() {
					if err := v.quantizeAt(l, xs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
