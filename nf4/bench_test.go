package nf4

import (
	"fmt"
	"testing"
)

// benchSide is the side of the square weight of the benchmarks: a LLaMA-7B
// attention projection.
const benchSide = 4096

// reportGBs reports bytes per second of float32 data as GB/s.
func reportGBs(b *testing.B, bytes int) {
	b.ReportMetric(float64(bytes)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

// BenchmarkBandwidth compares NF4 quantize and dequantize of a 4096×4096
// float32 weight with a plain copy of the same 64 MiB of float32, the ceiling
// for writing that much memory. GB/s counts float32 bytes (written for copy
// and dequantize, read for quantize).
func BenchmarkBandwidth(b *testing.B) {
	const n = benchSide * benchSide
	w := gaussian(1, n, 0.02)
	dst := make([]float32, n)
	m, err := Quantize(w, benchSide, benchSide, Options{})
	if err != nil {
		b.Fatal(err)
	}
	copy(dst, w) // fault the pages in before timing
	b.Run("copy", func(b *testing.B) {
		for b.Loop() {
			copy(dst, w)
		}
		reportGBs(b, 4*n)
	})
	b.Run("dequantize", func(b *testing.B) {
		for b.Loop() {
			if err := m.Dequantize(dst); err != nil {
				b.Fatal(err)
			}
		}
		reportGBs(b, 4*n)
	})
	b.Run("dequantize-rows", func(b *testing.B) {
		// DequantizeRows, as the training graph calls it: one goroutine.
		for b.Loop() {
			if err := m.DequantizeRows(dst, 0, benchSide); err != nil {
				b.Fatal(err)
			}
		}
		reportGBs(b, 4*n)
	})
	for _, dq := range []bool{true, false} {
		b.Run(fmt.Sprintf("quantize/dq=%v", dq), func(b *testing.B) {
			var q *Matrix
			for b.Loop() {
				var err error
				if q, err = Quantize(w, benchSide, benchSide, Options{DisableDoubleQuant: !dq}); err != nil {
					b.Fatal(err)
				}
			}
			reportGBs(b, 4*n)
			b.ReportMetric(q.BitsPerParam(), "bits/param")
		})
	}
}

// BenchmarkMulT compares the fused 4-bit y = x·Wᵀ on a 4096×4096 weight with
// the unfused way: dequantize the whole matrix, then a float32 product.
func BenchmarkMulT(b *testing.B) {
	m, err := Quantize(gaussian(2, benchSide*benchSide, 0.02), benchSide, benchSide, Options{})
	if err != nil {
		b.Fatal(err)
	}
	dense := make([]float32, benchSide*benchSide)
	if err := m.Dequantize(dense); err != nil { // fault the pages in
		b.Fatal(err)
	}
	for _, n := range []int{1, 4, 16} {
		x := gaussian(3, n*benchSide, 1)
		y := make([]float32, n*benchSide)
		b.Run(fmt.Sprintf("n=%d/fused", n), func(b *testing.B) {
			for b.Loop() {
				if err := m.MulT(y, x, n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(m.BitsPerParam(), "bits/param")
		})
		b.Run(fmt.Sprintf("n=%d/fused-1goroutine", n), func(b *testing.B) {
			for b.Loop() {
				m.mulTRange(y, x, n, 0, benchSide)
			}
		})
		b.Run(fmt.Sprintf("n=%d/dequantize+matmul", n), func(b *testing.B) {
			for b.Loop() {
				if err := m.Dequantize(dense); err != nil {
					b.Fatal(err)
				}
				for r := range benchSide {
					row := dense[r*benchSide : (r+1)*benchSide]
					for i := range n {
						y[i*benchSide+r] = dotScalar(row, x[i*benchSide:(i+1)*benchSide])
					}
				}
			}
		})
	}
}
