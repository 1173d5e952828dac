package nf4

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golora/golora/internal/kernels"
	"github.com/stretchr/testify/require"
)

// q8Matrix returns random Q8_0 codes in [−127, 127] (the extremes
// included) and positive scales for a [rows, cols] matrix, one block all
// zero codes.
func q8Matrix(seed uint64, rows, cols int) ([]int8, []float32) {
	rng := rand.New(rand.NewPCG(seed, 7))
	codes := make([]int8, rows*cols)
	for i := range codes {
		codes[i] = int8(rng.IntN(255) - 127)
	}
	codes[0], codes[len(codes)-1] = 127, -127
	clear(codes[:min(len(codes), Int8Group)])
	scales := make([]float32, rows*cols/Int8Group)
	for i := range scales {
		scales[i] = float32(rng.ExpFloat64()) * 0.01
	}
	return codes, scales
}

// TestInt8MatrixLevelsBitIdentical checks that every kernel level (VNNI at
// AVX512 on a CPU with it, VPMADDUBSW at AVX2) gives the Go code's bits on
// every row range, for row counts that are and are not multiples of four
// and columns that are not whole pairs of 128 (a lone block of 32, a lone
// step of 64), and that the result is the dot product of the dequantized
// rows with the vector within the vector's rounding.
func TestInt8MatrixLevelsBitIdentical(t *testing.T) {
	for _, shape := range [][2]int{{1, 32}, {4, 64}, {7, 96}, {5, 128}, {9, 288}, {37, 768}, {300, 320}} {
		rows, cols := shape[0], shape[1]
		codes, scales := q8Matrix(uint64(rows*cols), rows, cols)
		m, err := NewInt8Matrix(codes, scales, rows, cols)
		require.NoError(t, err)
		vectors := map[string][]float32{"gaussian": gaussian(uint64(cols), cols, 1)}
		if cols >= 64 {
			vectors = int8Vectors(cols)
		}
		for vname, xs := range vectors {
			name := fmt.Sprintf("[%d %d] %s", rows, cols, vname)
			var x Int8Vector
			require.NoError(t, x.Quantize(xs))
			want := make([]float32, rows)
			m.int8MatScalar(want, &x, 0, rows)
			for r := range rows {
				var dot, bound float64
				for c := range cols {
					w := float64(codes[r*cols+c]) * float64(scales[(r*cols+c)/Int8Group])
					dot += w * float64(xs[c])
					var amax float64
					for _, v := range xs[c/Int8Group*Int8Group : (c/Int8Group+1)*Int8Group] {
						amax = max(amax, math.Abs(float64(v)))
					}
					bound += math.Abs(w) * amax / 254
				}
				require.InDelta(t, dot, float64(want[r]), bound*1.01+1e-6, "%s row %d", name, r)
			}
			for _, l := range levels() {
				for _, span := range [][2]int{{0, rows}, {1, rows}, {rows / 3, rows - rows/4}} {
					got := make([]float32, rows)
					require.NoError(t, m.MulVecRows(got, &x, span[0], span[1]))
					m.mulVecAt(l, got, &x, span[0], span[1])
					requireSameBits(t, want[span[0]:span[1]], got[span[0]:span[1]], name, " level ", l, " rows ", span)
				}
			}
		}
	}
}

func TestInt8MatrixErrors(t *testing.T) {
	codes, scales := q8Matrix(1, 2, 64)
	_, err := NewInt8Matrix(codes, scales, 2, 48)
	require.ErrorContains(t, err, "multiple of 32")
	_, err = NewInt8Matrix(codes, scales[1:], 2, 64)
	require.ErrorContains(t, err, "128 codes and 3 scales")
	// rows·cols would overflow.
	huge := math.MaxInt/64 + 1
	_, err = NewInt8Matrix(nil, nil, huge, 64)
	require.ErrorContains(t, err, fmt.Sprintf("shape [%d 64]: more elements", huge))
	codes[70] = -128
	_, err = NewInt8Matrix(codes, scales, 2, 64)
	require.ErrorContains(t, err, "row 1, column 6")
	codes[70] = 0
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1)), math.MaxFloat32} {
		s := append([]float32(nil), scales...)
		s[3] = bad
		_, err = NewInt8Matrix(codes, s, 2, 64)
		require.ErrorContains(t, err, "at row 1, block 1: want finite", "scale %g", bad)
	}
	m, err := NewInt8Matrix(codes, scales, 2, 64)
	require.NoError(t, err)
	var x Int8Vector
	require.NoError(t, x.Quantize(make([]float32, 96)))
	require.ErrorContains(t, m.MulVecRows(make([]float32, 2), &x, 0, 2), "96 values, matrix has 64 columns")
	require.NoError(t, x.Quantize(make([]float32, 64)))
	require.ErrorContains(t, m.MulVecRows(make([]float32, 1), &x, 0, 2), "rows [0, 2)")
}

// BenchmarkInt8MatrixMulVec measures stories110M- and stories15M-shaped
// int8 output heads (32000 × 768 and × 288, read from memory) and a
// 512-row slice (L2-resident): "int8" is Int8Matrix with the vector's
// quantization, "float" the same Q8_0 weights times the float32 vector
// (kernels.Int8Matrix, HeadInt8 without ActivationsInt8). GB/s counts the
// Q8_0 codes and scales, the same bytes for both.
func BenchmarkInt8MatrixMulVec(b *testing.B) {
	for _, shape := range [][2]int{{32000, 768}, {512, 768}, {32000, 288}} {
		rows, cols := shape[0], shape[1]
		codes, scales := q8Matrix(3, rows, cols)
		m, err := NewInt8Matrix(codes, scales, rows, cols)
		require.NoError(b, err)
		xs := gaussian(2, cols, 1)
		y := make([]float32, rows)
		gbs := func(b *testing.B) {
			b.ReportMetric(float64(len(codes)+4*len(scales))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		}
		b.Run(fmt.Sprintf("%dx%d/float", rows, cols), func(b *testing.B) {
			f := &kernels.Int8Matrix{Rows: rows, Cols: cols, Codes: codes, Scales: scales}
			for b.Loop() {
				f.MulVecRows(y, xs, 0, rows)
			}
			gbs(b)
		})
		b.Run(fmt.Sprintf("%dx%d/int8", rows, cols), func(b *testing.B) {
			var x Int8Vector
			for b.Loop() {
				if err := x.Quantize(xs); err != nil {
					b.Fatal(err)
				}
				if err := m.MulVecRows(y, &x, 0, rows); err != nil {
					b.Fatal(err)
				}
			}
			gbs(b)
		})
	}
}
