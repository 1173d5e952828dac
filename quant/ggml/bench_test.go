package ggml

import (
	"fmt"
	"testing"
)

// Benchmarks on a [benchRows, benchCols] matrix (an attention projection of
// a 2048-wide model), every format side by side with its baseline:
//
//	go test ./quant/ggml -run '^$' -bench . -benchtime 20x
//
// DequantizeRows reports GB/s of float32 written next to a plain copy of the
// float32 matrix; MulT compares the fused row kernel with dequantizing the row
// and then taking the dot product (both on one goroutine), and the public,
// multi-goroutine MulT.
const benchRows, benchCols = 512, 2048

func benchMatrix(b *testing.B, typ Type) *Matrix {
	m, err := Quantize(typ, randomX(benchRows, benchCols, 1), benchRows, benchCols)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func BenchmarkDequantizeRows(b *testing.B) {
	floatBytes := float64(4 * benchRows * benchCols)
	b.Run("copy-f32", func(b *testing.B) {
		src := randomX(benchRows, benchCols, 1)
		dst := make([]float32, len(src))
		for b.Loop() {
			copy(dst, src)
		}
		b.ReportMetric(floatBytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRows), "ns/row")
	})
	for _, typ := range goldenTypes {
		b.Run(typ.String(), func(b *testing.B) {
			m := benchMatrix(b, typ)
			dst := make([]float32, benchRows*benchCols)
			for b.Loop() {
				if err := m.DequantizeRows(dst, 0, benchRows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(floatBytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRows), "ns/row")
		})
	}
}

func BenchmarkMulT(b *testing.B) {
	x := randomX(1, benchCols, 3)
	y := make([]float32, benchRows)
	report := func(b *testing.B, m *Matrix) {
		b.ReportMetric(float64(len(m.data))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRows), "ns/row")
	}
	b.Run("f32-dot", func(b *testing.B) {
		w := randomX(benchRows, benchCols, 1)
		for b.Loop() {
			for r := range benchRows {
				y[r] = dot(w[r*benchCols:(r+1)*benchCols], x)
			}
		}
		b.ReportMetric(float64(4*len(w))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRows), "ns/row")
	})
	for _, typ := range goldenTypes {
		m := benchMatrix(b, typ)
		b.Run(fmt.Sprintf("%v/dequant+dot", typ), func(b *testing.B) {
			row := make([]float32, benchCols)
			for b.Loop() {
				for r := range benchRows {
					m.f.dequant(row, m.data[r*m.rowBytes:(r+1)*m.rowBytes])
					y[r] = dot(row, x)
				}
			}
			report(b, m)
		})
		b.Run(fmt.Sprintf("%v/fused", typ), func(b *testing.B) {
			for b.Loop() {
				for r := range benchRows {
					y[r] = m.f.dot(m.data[r*m.rowBytes:(r+1)*m.rowBytes], x)
				}
			}
			report(b, m)
		})
		b.Run(fmt.Sprintf("%v/MulT", typ), func(b *testing.B) {
			for b.Loop() {
				if err := m.MulT(y, x, 1); err != nil {
					b.Fatal(err)
				}
			}
			report(b, m)
		})
	}
}
