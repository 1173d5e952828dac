package nf4

import (
	"testing"

	"github.com/golora/golora/internal/cpu"
	"github.com/stretchr/testify/require"
	xcpu "golang.org/x/sys/cpu"
)

// TestMulVecInt8VBMIBitIdentical checks that the VBMI kernels (VPERMB
// lookups), chosen on a CPU with AVX-512 VBMI, give the bits of the VNNI
// kernels without it (VPSHUFB lookups) on every row range.
func TestMulVecInt8VBMIBitIdentical(t *testing.T) {
	if cpu.Best() < cpu.AVX512 || !cpu.HasAVX512VNNI() || !xcpu.X86.HasAVX512VBMI {
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
