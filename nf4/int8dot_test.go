package nf4

import (
	"fmt"
	"math"
	"testing"

	"github.com/golora/golora/internal/cpu"
	"github.com/stretchr/testify/require"
)

// int8Matrices returns matrices MulVecInt8Rows supports: row counts that
// are and are not multiples of four (the VNNI kernel takes four rows at a
// time), several steps per block, with and without double quantization,
// with an all-zero block.
func int8Matrices(t *testing.T) map[string]*Matrix {
	t.Helper()
	shapes := [][2]int{{1, 64}, {4, 64}, {7, 128}, {5, 192}, {16, 256}, {9, 320}, {37, 768}, {130, 2048}}
	out := quantizedMatrices(t, shapes, []int{64, 128, 256}, true)
	for name, m := range out {
		require.True(t, m.SupportsInt8(), name)
	}
	return out
}

// int8Vectors returns vectors of n values to multiply by: Gaussian, with
// an outlier, with an all-zero group, and values at the int8 extremes
// (±max in a group, so codes ±127).
func int8Vectors(n int) map[string][]float32 {
	g := gaussian(uint64(n), n, 1)
	outlier := append([]float32(nil), g...)
	outlier[n/2] = 300
	zeros := append([]float32(nil), g...)
	clear(zeros[32:64])
	extremes := make([]float32, n)
	for i := range extremes {
		extremes[i] = float32(1 - 2*(i%2))
	}
	return map[string][]float32{"gaussian": g, "outlier": outlier, "zero-group": zeros, "extremes": extremes}
}

// TestMulVecInt8LevelsBitIdentical checks that every kernel level (VNNI at
// AVX512 on a CPU with it, the VPMADDUBSW kernel at AVX2) gives the scalar
// code's bits, on every row range.
func TestMulVecInt8LevelsBitIdentical(t *testing.T) {
	for name, m := range int8Matrices(t) {
		for vname, xs := range int8Vectors(m.cols) {
			var x Int8Vector
			require.NoError(t, x.Quantize(xs))
			want := make([]float32, m.rows)
			m.mulVecInt8Scalar(want, &x, nil, 0, m.rows)
			absmax := m.Absmax()
			for _, l := range levels() {
				for _, span := range [][2]int{{0, m.rows}, {1, m.rows}, {m.rows / 3, m.rows - m.rows/4}} {
					got := make([]float32, m.rows)
					m.mulVecInt8At(l, got, &x, nil, span[0], span[1])
					requireSameBits(t, want[span[0]:span[1]], got[span[0]:span[1]], name, " ", vname, " level ", l, " rows ", span)
					decoded := make([]float32, m.rows)
					m.mulVecInt8At(l, decoded, &x, absmax, span[0], span[1])
					requireSameBits(t, got, decoded, name, " ", vname, " level ", l, " rows ", span, " with absmax")
					for r, v := range got {
						if r < span[0] || r >= span[1] {
							require.Zero(t, v, "%s level %v: row %d outside %v written", name, l, r, span)
						}
					}
				}
			}
		}
	}
}

// TestMulVecInt8Reference checks the scalar code against the product
// written out plainly in float64: weights int8Codebook[code]/127·absmax,
// vector values code·max|x|/127 of their group. The two differ only by
// float32 rounding of partial sums.
func TestMulVecInt8Reference(t *testing.T) {
	for name, m := range int8Matrices(t) {
		for vname, xs := range int8Vectors(m.cols) {
			var x Int8Vector
			require.NoError(t, x.Quantize(xs))
			// The vector as the kernels see it, from x alone.
			deq := make([]float64, m.cols)
			for g := 0; g < m.cols; g += Int8Group {
				var amax float64
				for _, v := range xs[g : g+Int8Group] {
					amax = max(amax, math.Abs(float64(v)))
				}
				for i := g; i < g+Int8Group && amax > 0; i++ {
					q := math.RoundToEven(float64(xs[i]) * float64(float32(127/float32(amax))))
					deq[i] = q * amax / 127
				}
			}
			got := make([]float32, m.rows)
			require.NoError(t, m.MulVecInt8Rows(got, &x, nil, 0, m.rows))
			for r := range m.rows {
				var want, mag float64
				for c := range m.cols {
					e := r*m.cols + c
					w := float64(int8Codebook[m.code(e)]) / 127 * float64(m.scale(e/m.blockSize))
					want += w * deq[c]
					mag += math.Abs(w * deq[c])
				}
				require.InDelta(t, want, float64(got[r]), 1e-5*mag+1e-30, "%s %s row %d", name, vname, r)
			}
		}
	}
}

// TestInt8VectorQuantize checks the rounding bound (half a step of the
// group: max|x|/254) and the layout: odd values first, then even ones.
func TestInt8VectorQuantize(t *testing.T) {
	xs := gaussian(3, 320, 2)
	var v Int8Vector
	require.NoError(t, v.Quantize(xs))
	require.Equal(t, 320, v.Len())
	// The missing partner of the last step is zero.
	for _, i := range []int{256 + 32, 256 + 63, 256 + 96, 256 + 127} {
		require.Zero(t, v.q[i], "padding code %d", i)
	}
	for i, f := range xs {
		g := i / Int8Group
		var amax float32
		for _, u := range xs[g*Int8Group : (g+1)*Int8Group] {
			amax = max(amax, float32(math.Abs(float64(u))))
		}
		c := i % int8Pair
		p := i/int8Pair*int8Pair + c/2
		if c%2 == 0 {
			p += int8Step
		}
		back := float64(v.q[p]) * float64(amax) / 127
		require.InDelta(t, float64(f), back, float64(amax)/254*1.0001, "value %d", i)
	}
	// Reuse: a shorter vector fits in the same memory, and the partner of
	// its last step is zeroed.
	q := &v.q[0]
	require.NoError(t, v.Quantize(xs[:64]))
	require.Equal(t, 64, v.Len())
	require.Same(t, q, &v.q[0])
	for i := 32; i < 64; i++ {
		require.Zero(t, v.q[i], "padding code %d", i)
		require.Zero(t, v.q[64+i], "padding code %d", 64+i)
	}
}

func TestInt8Errors(t *testing.T) {
	var v Int8Vector
	require.ErrorContains(t, v.Quantize(make([]float32, 80)), "multiple of 32")
	require.NoError(t, v.Quantize(make([]float32, 96)))
	bad := make([]float32, 128)
	bad[70] = float32(math.NaN())
	require.ErrorContains(t, v.Quantize(bad), "[64, 96) is not finite")

	m, err := Quantize(gaussian(1, 4*96, 1), 4, 96, Options{BlockSize: 32})
	require.NoError(t, err)
	require.False(t, m.SupportsInt8())
	require.NoError(t, v.Quantize(make([]float32, 128)))
	require.ErrorContains(t, m.MulVecInt8Rows(make([]float32, 4), &v, nil, 0, 4), "whole blocks")

	m, err = Quantize(gaussian(1, 4*64, 1), 4, 64, Options{})
	require.NoError(t, err)
	require.ErrorContains(t, m.MulVecInt8Rows(make([]float32, 4), &v, nil, 0, 4), "128 values, matrix has 64 columns")
	require.NoError(t, v.Quantize(make([]float32, 64)))
	require.ErrorContains(t, m.MulVecInt8Rows(make([]float32, 3), &v, nil, 0, 4), "rows [0, 4)")
	require.ErrorContains(t, m.MulVecInt8Rows(make([]float32, 4), &v, make([]float32, 3), 0, 4), "3 block scales, the matrix has 4 blocks")
}

// TestInt8Codebook checks the int8 levels against the NF4 codebook: each
// within half a unit of 127 times its level.
func TestInt8Codebook(t *testing.T) {
	for i, c := range Codebook() {
		k := Int8Codebook()[i]
		require.InDelta(t, float64(c)*127, float64(k), 0.5, "code %d", i)
		require.Equal(t, uint8(int(k)+128), int8CodebookBiased[i])
	}
}

// BenchmarkMulVecInt8 compares, on stories110M's block shapes, the int8
// product (including quantizing the vector, once per product) with the
// exact single-row product MulTRows; GB/s counts the NF4 codes and scales.
func BenchmarkMulVecInt8(b *testing.B) {
	for _, shape := range [][2]int{{768, 768}, {2048, 768}, {768, 2048}, {65536, 768}} {
		rows, cols := shape[0], shape[1]
		m, err := Quantize(gaussian(1, rows*cols, 0.02), rows, cols, Options{})
		require.NoError(b, err)
		xs := gaussian(2, cols, 1)
		y := make([]float32, rows)
		name := fmt.Sprintf("%dx%d", rows, cols)
		report := func(b *testing.B) {
			b.ReportMetric(float64(m.StorageBytes())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		}
		b.Run(name+"/exact", func(b *testing.B) {
			for b.Loop() {
				if err := m.MulTRows(y, xs, 1, 0, rows); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
		for _, absmax := range [][]float32{nil, m.Absmax()} {
			suffix := ""
			if absmax != nil {
				suffix = "+absmax"
			}
			b.Run(name+"/int8"+suffix, func(b *testing.B) {
				var x Int8Vector
				for b.Loop() {
					if err := x.Quantize(xs); err != nil {
						b.Fatal(err)
					}
					if err := m.MulVecInt8Rows(y, &x, absmax, 0, rows); err != nil {
						b.Fatal(err)
					}
				}
				report(b)
			})
		}
		b.Run(name+"/quantize", func(b *testing.B) {
			var x Int8Vector
			for b.Loop() {
				if err := x.Quantize(xs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRoundInt8 checks roundInt8 against math.RoundToEven, clamped, around
// every half-integer in range and beyond it.
func TestRoundInt8(t *testing.T) {
	for k := -260; k <= 260; k++ {
		mid := float32(k) / 2
		for _, f := range []float32{mid, math.Nextafter32(mid, -1000), math.Nextafter32(mid, 1000)} {
			want := int8(max(-128, min(127, math.RoundToEven(float64(f)))))
			require.Equal(t, want, roundInt8(f), "%v", f)
		}
	}
}

// TestInt8VectorQuantizeLevels checks that every kernel level quantizes a
// vector to the bits of the Go code (quantizePairScalar): Gaussian values,
// ties (values whose scaled code is exactly k+½, rounded to even), an
// all-zero group, tiny and huge groups, a last pair of one, two or three
// groups (Quantize takes any multiple of 32: 160, 320, 96 and 224); and
// that each finds the same first non-finite group.
func TestInt8VectorQuantizeLevels(t *testing.T) {
	for _, n := range []int{64, 96, 128, 160, 192, 224, 320, 768, 2048} {
		xs := gaussian(uint64(n), n, 1.5)
		// Group 0: the largest value 127, so value k+½ scales to k+½.
		xs[0] = 127
		for i := 1; i < Int8Group; i++ {
			xs[i] = float32(i%9-4) + 0.5
		}
		clear(xs[Int8Group : 2*Int8Group]) // an all-zero group
		if n >= 4*Int8Group {
			for i := 2 * Int8Group; i < 3*Int8Group; i++ {
				xs[i] *= 1e-30
			}
			for i := 3 * Int8Group; i < 4*Int8Group; i++ {
				xs[i] *= 1e30
			}
		}
		if n >= 6*Int8Group {
			// Groups whose largest magnitude is subnormal, and just below
			// minInt8Amax: 127/amax would overflow, so they quantize as zeros.
			for i := 4 * Int8Group; i < 5*Int8Group; i++ {
				xs[i] = float32(i%7-3) * 1e-40
			}
			for i := 5 * Int8Group; i < 6*Int8Group; i++ {
				xs[i] = float32(i%7-3) * 0x1p-122
			}
		}
		var want Int8Vector
		require.NoError(t, want.Quantize(xs))
		require.NoError(t, want.quantizeAt(cpu.Generic, xs))
		for _, l := range levels() {
			var got Int8Vector
			require.NoError(t, got.Quantize(xs))
			require.NoError(t, got.quantizeAt(l, xs))
			require.Equal(t, want.q, got.q, "%d values, level %v: codes", n, l)
			require.Equal(t, want.bias, got.bias, "%d values, level %v: biases", n, l)
			for i := range want.scale {
				require.Equal(t, math.Float32bits(want.scale[i]), math.Float32bits(got.scale[i]), "%d values, level %v: scale %d", n, l, i)
			}
		}
		if n >= 6*Int8Group {
			for _, grp := range []int{4, 5} {
				// A pair holds four groups: its odd columns' codes first, 16 a
				// group, then its even columns'.
				at := grp/4*int8Pair + grp%4*Int8Group/2
				for _, off := range []int{at, at + int8Step} {
					require.Equal(t, make([]int8, Int8Group/2), want.q[off:off+Int8Group/2], "%d values: codes of group %d, below minInt8Amax", n, grp)
				}
			}
		}
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
			ys := append([]float32(nil), xs...)
			ys[n-5] = bad
			g := (n - 5) / Int8Group * Int8Group
			for _, l := range levels() {
				var v Int8Vector
				require.NoError(t, v.Quantize(xs))
				require.ErrorContains(t, v.quantizeAt(l, ys), fmt.Sprintf("[%d, %d) is not finite", g, g+Int8Group), "level %v", l)
			}
		}
	}
}
