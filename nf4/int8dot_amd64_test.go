package nf4

import (
	"fmt"
	"testing"

	"github.com/golora/golora/internal/cpu"
	"github.com/stretchr/testify/require"
)

// TestMulVecInt8VBMIBitIdentical checks that the VBMI kernels (VPERMB
// lookups), chosen on a CPU with AVX-512 VBMI, give the bits of the VNNI
// kernels without it (VPSHUFB lookups) on every row range.
func TestMulVecInt8VBMIBitIdentical(t *testing.T) {
	if cpu.Best() < cpu.AVX512 || !cpu.HasAVX512VNNI() || !cpu.HasAVX512VBMI() {
		t.Skip("needs AVX-512 VNNI and VBMI")
	}
	for name, m := range int8Matrices(t) {
		for vname, xs := range int8Vectors(m.cols) {
			var x Int8Vector
			require.NoError(t, x.Quantize(xs))
			absmax := m.Absmax()
			for _, span := range [][2]int{{0, m.rows}, {1, m.rows}, {m.rows / 3, m.rows - m.rows/4}} {
				want := make([]float32, m.rows)
				m.mulVecInt8With(cpu.AVX512, false, want, &x, absmax, span[0], span[1])
				got := make([]float32, m.rows)
				m.mulVecInt8With(cpu.AVX512, true, got, &x, absmax, span[0], span[1])
				requireSameBits(t, want, got, name, " ", vname, " rows ", span)
			}
		}
	}
}

// BenchmarkMulVecInt8VBMI compares, in one process and alternating call by
// call (paired), the VNNI kernels with VPSHUFB lookups ("vnni") and with
// VPERMB lookups (VBMI) on a cache-resident matrix (2048 × 768) and one
// read from memory (65536 × 768). GB/s counts the bytes of codes and
// scales.
func BenchmarkMulVecInt8VBMI(b *testing.B) {
	if cpu.Best() < cpu.AVX512 || !cpu.HasAVX512VNNI() || !cpu.HasAVX512VBMI() {
		b.Skip("needs AVX-512 VNNI and VBMI")
	}
	for _, rows := range []int{2048, 65536} {
		cols := 768
		m, err := Quantize(gaussian(1, rows*cols, 0.02), rows, cols, Options{})
		require.NoError(b, err)
		var x Int8Vector
		require.NoError(b, x.Quantize(gaussian(2, cols, 1)))
		absmax := m.Absmax()
		y := make([]float32, rows)
		b.Run(fmt.Sprintf("%dx%d", rows, cols), func(b *testing.B) {
			paired(b, len(m.packed)+4*len(absmax), "vnni", func() {
				m.mulVecInt8With(cpu.AVX512, false, y, &x, absmax, 0, rows)
			}, func() {
				m.mulVecInt8With(cpu.AVX512, true, y, &x, absmax, 0, rows)
			})
		})
	}
}
