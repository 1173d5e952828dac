package quant_test

import (
	"testing"

	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
)

// BenchmarkDequantizeRows compares how fast each format turns its codes back
// into float32, in GB/s of float32 written, against a plain copy of the same
// float32 matrix (the memory-bound ceiling), 64 rows at a time.
func BenchmarkDequantizeRows(b *testing.B) {
	const rows, cols, tile = 1024, 1024, 64
	w := gaussian(1, rows*cols, 0.02)
	formats := []quant.Named{
		nf4Quantizer("nf4", nf4.Options{}),
		quant.Named{Name: "fp4", Quantize: quant.FP4Quantizer(64)},
		quant.Named{Name: "int4", Quantize: quant.Int4Quantizer(64)},
		quant.Named{Name: "int8", Quantize: quant.Int8Quantizer(64)},
	}
	dst := make([]float32, tile*cols)
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.N)*rows*cols*4/b.Elapsed().Seconds()/1e9, "GB/s")
	}

	b.Run("copy-f32", func(b *testing.B) {
		for b.Loop() {
			for start := 0; start < rows; start += tile {
				copy(dst, w[start*cols:(start+tile)*cols])
			}
		}
		report(b)
		b.ReportMetric(32, "bits/param")
	})
	for _, f := range formats {
		m, err := f.Quantize(w, rows, cols)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(f.Name, func(b *testing.B) {
			for b.Loop() {
				for start := 0; start < rows; start += tile {
					if err := m.DequantizeRows(dst, start, start+tile); err != nil {
						b.Fatal(err)
					}
				}
			}
			report(b)
			b.ReportMetric(m.BitsPerParam(), "bits/param")
		})
	}
}
