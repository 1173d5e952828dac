package ggml

import (
	"fmt"
	"testing"
	"time"

	"github.com/golora/golora/internal/kernels"
)

// Benchmarks on a [benchRows, benchCols] matrix (an attention projection of
// a 2048-wide model), every format side by side with its baseline:
//
//	go test ./quant/ggml -run '^$' -bench . -benchtime 0.5s -count 5
//
// DequantizeRows reports float32 written per second next to a plain copy of
// the float32 matrix; MulT compares the float32 mat-vec (f32-dot, GB/s of
// float32 weights) with, per format, dequantizing each row and then taking
// the dot product, the fused row kernels (the vector ones where the CPU has
// them; GOLORA_KERNELS=generic for the Go code), both on one goroutine, and
// the public, multi-goroutine MulT; MulTBatch compares, for several rows of x,
// the fused kernel per row of x with expanding each row of W once. Besides
// wall-clock time per row, each reports the process CPU time per row, the
// steadier figure when other processes share the cores.
const benchRows, benchCols = 512, 2048

func benchMatrix(b *testing.B, typ Type) *Matrix {
	if _, ok := blockQuantizers[typ]; ok {
		m, err := Quantize(typ, randomX(benchRows, benchCols, 1), benchRows, benchCols)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	// A type we only read: ggml's golden blocks, repeated.
	golden := goldenBlocks(b, typ)
	rb, _ := typ.RowBytes(benchCols)
	data := make([]byte, benchRows*rb)
	for i := 0; i < len(data); i += copy(data[i:], golden) {
	}
	m, err := New("bench", typ, benchRows, benchCols, data)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// cpuMeter reports, next to the wall-clock figures, the process CPU time
// per row of W ("cpu-ns/row"): with other processes on the cores it is the
// steadier of the two.
type cpuMeter struct {
	start time.Duration
	ok    bool
}

func startCPU() cpuMeter {
	t, ok := cpuTime()
	return cpuMeter{t, ok}
}

func (m cpuMeter) report(b *testing.B, rows int) { m.reportPer(b, rows, "cpu-ns/row") }

func (m cpuMeter) reportPer(b *testing.B, n int, unit string) {
	if t, ok := cpuTime(); ok && m.ok {
		b.ReportMetric(float64((t-m.start).Nanoseconds())/float64(b.N*n), unit)
	}
}

func BenchmarkDequantizeRows(b *testing.B) {
	floatBytes := float64(4 * benchRows * benchCols)
	b.Run("copy-f32", func(b *testing.B) {
		src := randomX(benchRows, benchCols, 1)
		dst := make([]float32, len(src))
		copy(dst, src) // fault the pages in before timing
		cpu := startCPU()
		for b.Loop() {
			copy(dst, src)
		}
		cpu.report(b, benchRows)
		b.ReportMetric(floatBytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRows), "ns/row")
	})
	for _, typ := range goldenTypes {
		b.Run(typ.String(), func(b *testing.B) {
			m := benchMatrix(b, typ)
			dst := make([]float32, benchRows*benchCols)
			clear(dst) // fault the pages in before timing
			cpu := startCPU()
			for b.Loop() {
				if err := m.DequantizeRows(dst, 0, benchRows); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b, benchRows)
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
		cpu := startCPU()
		for b.Loop() {
			for r := range benchRows {
				y[r] = kernels.Dot(w[r*benchCols:(r+1)*benchCols], x)
			}
		}
		cpu.report(b, benchRows)
		b.ReportMetric(float64(4*len(w))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRows), "ns/row")
	})
	for _, typ := range goldenTypes {
		m := benchMatrix(b, typ)
		b.Run(fmt.Sprintf("%v/dequant+dot", typ), func(b *testing.B) {
			row := make([]float32, benchCols)
			cpu := startCPU()
			for b.Loop() {
				for r := range benchRows {
					m.f.dequant(row, m.data[r*m.rowBytes:(r+1)*m.rowBytes])
					y[r] = kernels.Dot(row, x)
				}
			}
			cpu.report(b, benchRows)
			report(b, m)
		})
		b.Run(fmt.Sprintf("%v/fused", typ), func(b *testing.B) {
			cpu := startCPU()
			for b.Loop() {
				m.fusedRows(y, x, 1, 0, benchRows)
			}
			cpu.report(b, benchRows)
			report(b, m)
		})
		b.Run(fmt.Sprintf("%v/MulT", typ), func(b *testing.B) {
			cpu := startCPU()
			for b.Loop() {
				if err := m.MulT(y, x, 1); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b, benchRows)
			report(b, m)
		})
	}
}

// BenchmarkMulTBatch measures MulT on n rows of x both ways: the fused
// kernel per row of x, and each row of W expanded once (what MulT does from
// mulTExpandMin rows on).
func BenchmarkMulTBatch(b *testing.B) {
	for _, n := range []int{2, 4, 8, 32} {
		x := randomX(n, benchCols, 3)
		y := make([]float32, n*benchRows)
		for _, typ := range []Type{Q8_0, Q4_0, Q4_K, Q6_K} {
			m := benchMatrix(b, typ)
			b.Run(fmt.Sprintf("n=%d/%v/fused", n, typ), func(b *testing.B) {
				cpu := startCPU()
				for b.Loop() {
					m.fusedRows(y, x, n, 0, benchRows)
				}
				cpu.reportPer(b, benchRows*n, "cpu-ns/row·x")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRows*n), "ns/row·x")
			})
			b.Run(fmt.Sprintf("n=%d/%v/expand", n, typ), func(b *testing.B) {
				w := make([]float32, benchCols)
				cpu := startCPU()
				for b.Loop() {
					for r := range benchRows {
						m.f.dequant(w, m.data[r*m.rowBytes:(r+1)*m.rowBytes])
						for i := range n {
							y[i*benchRows+r] = kernels.Dot(w, x[i*benchCols:(i+1)*benchCols])
						}
					}
				}
				cpu.reportPer(b, benchRows*n, "cpu-ns/row·x")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRows*n), "ns/row·x")
			})
		}
	}
}
