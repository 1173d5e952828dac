//go:build goexperiment.simd && amd64

package nf4

import (
	"math"
	"simd/archsimd"
	"testing"

	"github.com/stretchr/testify/require"
)

func requireAVX512(t *testing.T) {
	t.Helper()
	if !haveAVX512 {
		t.Skip("CPU without AVX-512: only the scalar kernels run")
	}
}

// TestVectorCodesEqualScalar checks that the AVX-512 quantizer produces the
// same bytes and absmax as the scalar one, including values on and next to
// every midpoint, zeros, ±1 and all-zero and partial blocks.
func TestVectorCodesEqualScalar(t *testing.T) {
	requireAVX512(t)
	for _, blockSize := range []int{32, 64, 256, 4096} {
		n := 3*4096 + 37
		w := gaussian(uint64(blockSize), n, 0.02)
		mids := Midpoints()
		for i := 0; i+4 < n; i += 97 {
			// Put the block's absmax at 1 so that these values are their own
			// normalized values.
			w[i] = 1
			k := (i / 97) % 15
			w[i+1] = mids[k]
			w[i+2] = math.Nextafter32(mids[k], 2)
			w[i+3] = -mids[k]
		}
		clear(w[blockSize : 2*blockSize])
		want := make([]byte, (n+1)/2)
		wantAbs := make([]float32, (n+blockSize-1)/blockSize)
		got := make([]byte, len(want))
		gotAbs := make([]float32, len(wantAbs))
		require.Equal(t, -1, quantizeBlocksRangeScalar(want, wantAbs, w, blockSize))
		require.Equal(t, -1, quantizeBlocksRangeAVX512(got, gotAbs, w, blockSize))
		require.Equal(t, wantAbs, gotAbs, "block size %d", blockSize)
		require.Equal(t, want, got, "block size %d", blockSize)

		w[2*blockSize+5] = float32(math.NaN())
		require.Equal(t, 2*blockSize+5, quantizeBlocksRangeAVX512(got, gotAbs, w, blockSize))
	}
}

func TestVectorDecodeEqualsScalar(t *testing.T) {
	requireAVX512(t)
	w := gaussian(23, 4*4096+3, 1)
	m, err := Quantize(w, 1, len(w), Options{BlockSize: 32})
	require.NoError(t, err)
	for _, span := range [][2]int{{0, 4096}, {1, 4095}, {31, 4000}, {4096 * 4, 4096*4 + 3}, {17, 50}, {0, len(w)}, {33, 63}} {
		e0, e1 := span[0], span[1]
		want := make([]float32, e1-e0)
		got := make([]float32, e1-e0)
		m.dequantRangeScalar(want, e0, e1)
		m.dequantRangeAVX512(got, e0, e1)
		require.Equal(t, want, got, "elements [%d, %d)", e0, e1)
	}
}

func TestVectorMulTCloseToScalar(t *testing.T) {
	requireAVX512(t)
	for _, cols := range []int{64, 172, 45, 4096} {
		const rows = 24
		m, err := Quantize(gaussian(29, rows*cols, 0.02), rows, cols, Options{})
		require.NoError(t, err)
		for _, n := range []int{1, 3, 4, 7} {
			x := gaussian(31, n*cols, 1)
			want := make([]float32, n*rows)
			got := make([]float32, n*rows)
			m.mulTRowsScalar(want, x, n, 0, rows)
			m.mulTRangeAVX512(got, x, n, 0, rows)
			for i := range want {
				require.InDelta(t, want[i], got[i], 1e-5*(1+math.Abs(float64(want[i]))), "cols %d n %d index %d", cols, n, i)
			}
		}
	}
}

// dotBaseline is the float32 dot product of the unfused benchmark baseline,
// vectorized like the fused kernel so that the comparison is about memory
// traffic, not instruction sets.
func dotBaseline(a, b []float32) float32 {
	if !haveAVX512 {
		return dotScalar(a, b)
	}
	b = b[:len(a)]
	var acc0, acc1 archsimd.Float32x16
	i := 0
	for ; i+32 <= len(a); i += 32 {
		acc0 = archsimd.LoadFloat32x16Slice(a[i:]).MulAdd(archsimd.LoadFloat32x16Slice(b[i:]), acc0)
		acc1 = archsimd.LoadFloat32x16Slice(a[i+16:]).MulAdd(archsimd.LoadFloat32x16Slice(b[i+16:]), acc1)
	}
	return sumLanes(acc0.Add(acc1)) + dotScalar(a[i:], b[i:])
}
