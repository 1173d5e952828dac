package nf4

import (
	"fmt"
	"testing"

	"github.com/golora/golora/internal/cpu"
)

// TestVBMIKernelsBitIdentical checks the AVX-512 kernels with VBMI and the
// four-row mat-vec and without (mulTRangeWith and dequantRangeWith choose)
// against the scalar code on matrices that take every path of the mat-vec
// (matVecAVX512): rows of W
// whole and not, blocks that span rows, calls of many batches of four rows
// (more than one scale buffer), wide rows (the larger buffer), rows whose
// four-row bound of blocks, 4·cols/blockSize = 510.5, is just over the
// smaller buffer (5 × 32672 in blocks of 256), row ranges that start
// anywhere and are not multiples of four.
func TestVBMIKernelsBitIdentical(t *testing.T) {
	if cpu.Best() < cpu.AVX512 || !cpu.HasAVX512VBMI() {
		t.Skip("no AVX-512 VBMI at this level")
	}
	shapes := [][2]int{{4, 32}, {5, 64}, {7, 288}, {130, 288}, {9, 768}, {6, 8224}, {8, 4096}, {5, 100}, {12, 96}, {5, 32672}}
	mats := quantizedMatrices(t, shapes, []int{32, 64, 128, 256, 4096}, false)
	for name, m := range mats {
		all := m.rows * m.cols
		wantW := make([]float32, all)
		m.dequantRangeScalar(wantW, 0, all)
		for _, vbmi := range []bool{true, false} {
			got := make([]float32, all)
			m.dequantRangeWith(cpu.AVX512, vbmi, got, 0, all)
			requireSameBits(t, wantW, got, name, " dequantize vbmi ", vbmi)
		}
		for _, n := range []int{1, 3, 5} {
			x := gaussian(uint64(n+m.cols), n*m.cols, 1)
			want := make([]float32, n*m.rows)
			m.mulTRowsScalar(want, x, n, 0, m.rows)
			spans := [][2]int{{0, m.rows}, {1, m.rows}, {3, m.rows - 1}, {2, min(m.rows, 6)}}
			for _, s := range spans {
				r0, r1 := s[0], s[1]
				if r0 >= r1 {
					continue
				}
				for _, vbmi := range []bool{true, false} {
					got := make([]float32, n*m.rows)
					m.mulTRangeWith(cpu.AVX512, vbmi, got, x, n, r0, r1)
					for i := range n {
						requireSameBits(t, want[i*m.rows+r0:i*m.rows+r1], got[i*m.rows+r0:i*m.rows+r1],
							name, " n ", n, " rows ", r0, r1, " vbmi ", vbmi)
						for r := range m.rows {
							if (r < r0 || r >= r1) && got[i*m.rows+r] != 0 {
								t.Fatalf("%s: n %d rows [%d, %d) vbmi %v: y[%d, %d] written", name, n, r0, r1, vbmi, i, r)
							}
						}
					}
				}
			}
		}
	}
}

// BenchmarkMatVec4 compares, on one goroutine, the AVX-512 mat-vec kernels
// that take a row of W at a time ("avx512-GB/s") and four rows at a time
// ("nf4-GB/s", matVecAVX512: the path MulT and MulTRows take on an AVX-512
// CPU) on the rows of a whole matrix. GB/s counts float32 weight bytes.
func BenchmarkMatVec4(b *testing.B) {
	if cpu.Best() < cpu.AVX512 {
		b.Skip("no AVX-512 at this level")
	}
	for _, shape := range benchShapes {
		rows, cols := shape[0], shape[1]
		m, err := Quantize(gaussian(2, rows*cols, 0.02), rows, cols, Options{})
		if err != nil {
			b.Fatal(err)
		}
		x := gaussian(3, cols, 1)
		y := make([]float32, rows)
		b.Run(fmt.Sprintf("%dx%d", rows, cols), func(b *testing.B) {
			paired(b, 4*rows*cols, "avx512", func() {
				m.mulTRangeWith(cpu.AVX512, false, y, x, 1, 0, rows)
			}, func() {
				m.mulTRangeWith(cpu.AVX512, true, y, x, 1, 0, rows)
			})
		})
	}
}
