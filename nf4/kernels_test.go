package nf4

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/golora/golora/internal/cpu"
	"github.com/stretchr/testify/require"
)

// levels returns every kernel level to test: those up to cpu.Best(), so that
// GOLORA_KERNELS=avx2 tests the AVX2 and pure-Go kernels of an AVX-512 CPU.
func levels() []cpu.Level {
	var ls []cpu.Level
	for l := cpu.Generic; l <= cpu.Best(); l++ {
		ls = append(ls, l)
	}
	return ls
}

// requireSameBits fails unless got and want hold the same float32 bit
// patterns (require.Equal would take −0 for +0).
func requireSameBits(t *testing.T, want, got []float32, msgAndArgs ...any) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			require.Failf(t, "different bits", "index %d: want %v (%#x), got %v (%#x) %s",
				i, want[i], math.Float32bits(want[i]), got[i], math.Float32bits(got[i]), fmt.Sprint(msgAndArgs...))
		}
	}
}

// quantizedMatrices quantizes Gaussian weights of every shape at every block
// size, with and without double quantization, the second block (when there
// is a third) all zeros; with wholeRows, only block sizes that divide the
// columns. They are keyed "rowsxcols/block=size/dq=bool".
func quantizedMatrices(t *testing.T, shapes [][2]int, blockSizes []int, wholeRows bool) map[string]*Matrix {
	t.Helper()
	out := map[string]*Matrix{}
	for _, shape := range shapes {
		rows, cols := shape[0], shape[1]
		for _, blockSize := range blockSizes {
			if wholeRows && cols%blockSize != 0 {
				continue
			}
			for _, dq := range []bool{true, false} {
				w := gaussian(uint64(rows*cols+blockSize), rows*cols, 0.02)
				if len(w) > 2*blockSize {
					clear(w[blockSize : 2*blockSize])
				}
				m, err := Quantize(w, rows, cols, Options{BlockSize: blockSize, DisableDoubleQuant: !dq})
				require.NoError(t, err)
				out[fmt.Sprintf("%dx%d/block=%d/dq=%v", rows, cols, blockSize, dq)] = m
			}
		}
	}
	return out
}

// kernelMatrices returns matrices of odd and even shapes at every block size,
// with and without double quantization, with an all-zero block and a zero
// scale over non-zero codes.
func kernelMatrices(t *testing.T) map[string]*Matrix {
	t.Helper()
	shapes := [][2]int{{1, 1}, {3, 31}, {5, 33}, {7, 45}, {4, 64}, {9, 95}, {6, 288}, {3, 1000}, {3, 4096}, {2, 4097}, {3, 5000}}
	out := quantizedMatrices(t, shapes, []int{32, 64, 128, 256, 512, 1024, 2048, 4096}, false)
	// A zero scale read from a file (Quantize gives one only to an all-zero
	// block, whose codes are all 7) must decode to zeros everywhere.
	p := out["3x1000/block=32/dq=false"].Parts()
	p.Absmax = append([]float32(nil), p.Absmax...)
	p.Absmax[5] = 0
	zero, err := FromParts(p)
	require.NoError(t, err)
	out["3x1000/block=32/zero-scale"] = zero
	return out
}

// TestDequantizeLevelsBitIdentical checks that every kernel level decodes
// every range of rows, and arbitrary element ranges, to the scalar code's
// exact bits.
func TestDequantizeLevelsBitIdentical(t *testing.T) {
	for name, m := range kernelMatrices(t) {
		n := m.rows * m.cols
		want := make([]float32, n)
		m.dequantRangeScalar(want, 0, n)
		for _, v := range want {
			require.False(t, math.IsNaN(float64(v)) || math.IsInf(float64(v), 0), "%s: non-finite value", name)
		}
		spans := [][2]int{{0, n}, {1, n}, {0, n - 1}, {n / 3, n - n/5}, {31, min(n, 97)}, {33, min(n, 63)}}
		for r := range m.rows {
			spans = append(spans, [2]int{r * m.cols, (r + 1) * m.cols})
		}
		for _, l := range levels() {
			for _, s := range spans {
				e0, e1 := s[0], s[1]
				if e0 > e1 {
					continue
				}
				got := make([]float32, e1-e0)
				m.dequantRangeAt(l, got, e0, e1)
				requireSameBits(t, want[e0:e1], got, name, " level ", l, " elements ", e0, e1)
			}
		}
	}
}

// TestMulTLevelsBitIdentical checks that every kernel level gives the
// scalar code's exact bits for y = x·Wᵀ, for 1 to 9 rows of x (the AVX-512
// kernel takes four rows at a time), on row ranges that start anywhere.
func TestMulTLevelsBitIdentical(t *testing.T) {
	for name, m := range kernelMatrices(t) {
		for _, n := range []int{1, 2, 4, 5, 9} {
			x := gaussian(uint64(n), n*m.cols, 1)
			want := make([]float32, n*m.rows)
			m.mulTRowsScalar(want, x, n, 0, m.rows)
			for _, l := range levels() {
				got := make([]float32, n*m.rows)
				m.mulTRangeAt(l, got, x, n, 0, m.rows)
				requireSameBits(t, want, got, name, " level ", l, " n ", n)
				if m.rows > 1 {
					clear(got)
					m.mulTRangeAt(l, got, x, n, 1, m.rows)
					for i := range n {
						requireSameBits(t, want[i*m.rows+1:(i+1)*m.rows], got[i*m.rows+1:(i+1)*m.rows], name, " level ", l, " rows from 1")
					}
				}
			}
		}
	}
}

// TestMulTOrder checks the scalar code against MulT's order written out
// plainly: lanes by the nibble of the group's code bytes, fused
// multiply-adds (fma32, checked on its own by TestFMA32), lanes folded in
// halves.
func TestMulTOrder(t *testing.T) {
	// laneOf is the lane of flat element e: its code is byte k/2 of its
	// group (k = e mod 32), the high nibble when k is even; lane 16h+l
	// takes nibble l/2 (from the bottom) of dword l mod 2 of half h.
	laneOf := func(e int) int {
		k := e % 32
		b := k / 2
		h, d, n := b/8, b%8/4, 2*(b%4)
		if k%2 == 0 {
			n++
		}
		return 16*h + 2*n + d
	}
	for name, m := range kernelMatrices(t) {
		const n = 2
		x := gaussian(7, n*m.cols, 1)
		w := make([]float32, m.rows*m.cols)
		m.dequantRangeScalar(w, 0, len(w))
		got := make([]float32, n*m.rows)
		m.mulTRowsScalar(got, x, n, 0, m.rows)
		for i := range n {
			for r := range m.rows {
				var acc [32]float32
				for c := range m.cols {
					e := r*m.cols + c
					acc[laneOf(e)] = fma32(w[e], x[i*m.cols+c], acc[laneOf(e)])
				}
				for half := 16; half >= 1; half /= 2 {
					for j := range half {
						acc[j] = acc[j] + acc[j+half]
					}
				}
				require.Equal(t, math.Float32bits(acc[0]), math.Float32bits(got[i*m.rows+r]), "%s: y[%d, %d]", name, i, r)
			}
		}
	}
}

// FuzzKernelsBitIdentical checks every level against the scalar code on
// random shapes, block sizes and row ranges.
func FuzzKernelsBitIdentical(f *testing.F) {
	f.Add(uint64(1), uint16(3), uint16(100), uint8(0), true, uint8(2))
	f.Add(uint64(2), uint16(1), uint16(4097), uint8(7), false, uint8(5))
	f.Fuzz(func(t *testing.T, seed uint64, rows, cols uint16, bs uint8, dq bool, n uint8) {
		r, c := int(rows%16)+1, int(cols%3000)+1
		blockSize := 32 << (bs % 8)
		m, err := Quantize(gaussian(seed, r*c, 1), r, c, Options{BlockSize: blockSize, DisableDoubleQuant: !dq})
		require.NoError(t, err)
		want := make([]float32, r*c)
		m.dequantRangeScalar(want, 0, r*c)
		k := int(n%6) + 1
		x := gaussian(seed+1, k*c, 1)
		wantY := make([]float32, k*r)
		m.mulTRowsScalar(wantY, x, k, 0, r)
		for _, l := range levels() {
			got := make([]float32, r*c)
			m.dequantRangeAt(l, got, 0, r*c)
			requireSameBits(t, want, got, "dequantize level ", l)
			gotY := make([]float32, k*r)
			m.mulTRangeAt(l, gotY, x, k, 0, r)
			requireSameBits(t, wantY, gotY, "MulT level ", l)
		}
	})
}

// TestFMA32 checks fma32 against a·b + c computed exactly with math/big and
// rounded once to float32 (big.Float's Float32, to nearest even), on random
// operands of every magnitude, on sums halfway between two float32 values
// after rounding to float64 but not before (where rounding twice goes
// wrong: 1+2⁻²³ + (1+2⁻²³)·2⁻²⁴(1−2⁻²³) is just below the halfway point
// 1+2⁻²³+2⁻²⁴, so one rounding gives 1+2⁻²³ and two give 1+2⁻²²), and on
// float32 subnormals.
func TestFMA32(t *testing.T) {
	exact := func(a, b, c float32) float32 {
		x := new(big.Float).SetPrec(400).SetFloat64(float64(a))
		x.Mul(x, new(big.Float).SetPrec(400).SetFloat64(float64(b)))
		x.Add(x, new(big.Float).SetPrec(400).SetFloat64(float64(c)))
		f, _ := x.Float32()
		if f == 0 {
			// An exact zero sum is +0 unless both addends are −0.
			f = float32(float64(a)*float64(b) + float64(c))
		}
		return f
	}
	check := func(a, b, c float32) {
		t.Helper()
		want, got := exact(a, b, c), fma32(a, b, c)
		if math.Float32bits(want) != math.Float32bits(got) {
			t.Fatalf("fma32(%g, %g, %g) = %g (%#x), want %g (%#x)", a, b, c, got, math.Float32bits(got), want, math.Float32bits(want))
		}
	}
	up := float32(1 + 0x1p-23)
	down := float32(0x1p-24 * (1 - 0x1p-23))
	check(up, down, up)
	check(-up, down, -up)
	check(up, -down, -up)
	check(up, down, 1)
	check(up, down, 3)
	check(0x1p-140, 0x1p-10, 0x1p-149)
	check(0x1p-75, 0x1p-75, -0x1p-149)
	// The same below the float32 normals: 2⁻¹²⁷+2⁻¹⁴⁹ plus just under
	// 2⁻¹⁵⁰, the subnormal halfway point.
	check(0x1p-75*(1+0x1p-23), 0x1p-75*(1-0x1p-23), math.Float32frombits(0x00400001))
	check(-0x1p-75*(1+0x1p-23), 0x1p-75*(1-0x1p-23), -math.Float32frombits(0x00400001))
	check(0, -1, 0)
	check(0, -1, float32(math.Copysign(0, -1)))
	r := rand.New(rand.NewPCG(9, 9))
	for range 200000 {
		f := func() float32 {
			return float32(math.Ldexp(r.Float64()*2-1, r.IntN(80)-40))
		}
		a, b, c := f(), f(), f()
		check(a, b, c)
		// A c of the product's size, where cancellation and halfway
		// sums are frequent.
		p := a * b
		check(a, b, -p*float32(1+r.IntN(3)))
		check(a, b, math.Nextafter32(p, 0)+float32(r.IntN(2))*p)
	}
	for range 20000 {
		sub := func() float32 { return math.Float32frombits(uint32(r.IntN(1<<24))) * float32(1-2*r.IntN(2)) }
		check(sub(), float32(math.Ldexp(r.Float64(), -r.IntN(30))), sub())
	}
}

// TestMulTAccuracy checks that MulT's order is at least as accurate, against
// the float64 dot product of the same decoded weights, as rounding each
// product and each sum (the order before fused multiply-adds).
func TestMulTAccuracy(t *testing.T) {
	const rows, cols = 64, 4096
	m, err := Quantize(gaussian(11, rows*cols, 0.02), rows, cols, Options{})
	require.NoError(t, err)
	x := gaussian(12, cols, 1)
	w := make([]float32, rows*cols)
	m.dequantRangeScalar(w, 0, len(w))
	y := make([]float32, rows)
	require.NoError(t, m.MulT(y, x, 1))
	var errFused, errRounded float64
	for r := range rows {
		var want float64
		var acc [32]float32
		for c := range cols {
			want += float64(w[r*cols+c]) * float64(x[c])
			acc[c%32] += float32(w[r*cols+c] * x[c])
		}
		for half := 16; half >= 1; half /= 2 {
			for j := range half {
				acc[j] += acc[j+half]
			}
		}
		errFused += math.Abs(float64(y[r]) - want)
		errRounded += math.Abs(float64(acc[0]) - want)
	}
	t.Logf("mean |error|: fused %.3g, rounded %.3g", errFused/rows, errRounded/rows)
	require.LessOrEqual(t, errFused, errRounded)
}
