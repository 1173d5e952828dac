package nf4

import (
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golora/golora/quant"
	"github.com/stretchr/testify/require"
)

// gaussian returns n float32 samples of N(0, std²) from a fixed seed.
func gaussian(seed uint64, n int, std float64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	w := make([]float32, n)
	for i := range w {
		w[i] = float32(r.NormFloat64() * std)
	}
	return w
}

// referenceCode is the NF4 rule of formats.md written as plainly as
// possible: the number of midpoints strictly below v.
func referenceCode(v float32) byte {
	var k byte
	for _, m := range Midpoints() {
		if v > m {
			k++
		}
	}
	return k
}

// code returns the 4-bit code of flat element e.
func (m *Matrix) code(e int) byte {
	b := m.packed[e/2]
	if e%2 == 0 {
		return b >> 4
	}
	return b & 15
}

func TestCodebookDerivation(t *testing.T) {
	// create_normal_map(offset=0.9677083, use_extra_value=True): Φ⁻¹ of
	// linspace(0.9677083, 0.5, 9)[:-1] for the positive side, −Φ⁻¹ of
	// linspace(0.9677083, 0.5, 8)[:-1] for the negative side, 0, divided by
	// the maximum. Φ⁻¹(p) = √2·erfinv(2p−1), computed here in float64.
	ppf := func(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }
	const offset = 0.9677083
	var want []float64
	for i := range 7 {
		want = append(want, -ppf(offset+(0.5-offset)*float64(i)/7))
	}
	want = append(want, 0)
	for i := 7; i >= 0; i-- {
		want = append(want, ppf(offset+(0.5-offset)*float64(i)/8))
	}
	top := want[15]
	cb := Codebook()
	for i := range want {
		require.InDeltaf(t, want[i]/top, float64(cb[i]), 2e-7, "code %d", i)
	}
	require.Equal(t, float32(0), cb[zeroCode])
}

func TestMidpointsAreBetweenCodes(t *testing.T) {
	// The midpoints are float32 roundings of the decimal literals in
	// bitsandbytes' kernel. The exact midpoint of two float32 codes can fall
	// on a float32 tie, where the literal may round the other way, so each
	// midpoint is within one ulp of the exact one and strictly between codes.
	cb := Codebook()
	for k, m := range Midpoints() {
		exact := (float64(cb[k]) + float64(cb[k+1])) / 2
		ulp := float64(math.Nextafter32(m, 2) - m)
		require.InDeltaf(t, exact, float64(m), ulp, "midpoint %d", k)
		require.Less(t, cb[k], m)
		require.Less(t, m, cb[k+1])
	}
}

func TestGoldenVector(t *testing.T) {
	// formats.md: x_i = float32(sin(0.37·i)·0.01·(1 + i mod 7)), x_5 = 0,
	// block 64, no double quantization; absmax, packed bytes and the first
	// dequantized values were computed by an independent numpy
	// implementation.
	x := make([]float32, 128)
	for i := range x {
		x[i] = float32(math.Sin(0.37*float64(i)) * 0.01 * float64(1+i%7))
	}
	x[5] = 0
	m, err := Quantize(x, 2, 64, Options{DisableDoubleQuant: true})
	require.NoError(t, err)
	require.Equal(t, []float32{0.06982684135437012, 0.06802158802747726}, m.Absmax())
	require.Equal(t,
		"78ade7e88642106557adf9abb952643224789bdeed7652100667acef9aa8521543347c8acddc97532111679ceff898631054457be9bccb95643212478bdeee87",
		hex.EncodeToString(m.packed))
	got := make([]float32, 128)
	require.NoError(t, m.DequantizeRows(got, 0, 2))
	require.Equal(t, []float32{0.0, 0.005556840915232897, 0.01718524470925331, 0.03928576782345772,
		0.05048179253935814, 0.0, 0.05048179253935814, 0.005556840915232897}, got[:8])
}

func TestMidpointTiesGoLower(t *testing.T) {
	for k, mid := range Midpoints() {
		above := math.Nextafter32(mid, 2)
		below := math.Nextafter32(mid, -2)
		// absmax 1, so each value is its own normalized value.
		w := []float32{1, mid, above, below}
		m, err := Quantize(w, 1, 4, Options{DisableDoubleQuant: true, BlockSize: 32})
		require.NoError(t, err)
		require.Equalf(t, byte(k), m.code(1), "exactly on midpoint %d", k)
		require.Equalf(t, byte(k+1), m.code(2), "just above midpoint %d", k)
		require.Equalf(t, byte(k), m.code(3), "just below midpoint %d", k)
	}
	require.Equal(t, byte(0), nf4Code(-2), "below −1 clamps to code 0")
	require.Equal(t, byte(15), nf4Code(2), "above 1 clamps to code 15")
	require.Equal(t, byte(0), nf4Code(-1))
	require.Equal(t, byte(15), nf4Code(1))
	require.Equal(t, byte(zeroCode), nf4Code(0))
	require.Equal(t, byte(zeroCode), nf4Code(float32(math.Copysign(0, -1))))
}

func TestQuantizeMatchesReference(t *testing.T) {
	// Shapes with partial last blocks, odd element counts and rows that start
	// in the middle of a byte; sizes large enough for the vector and the
	// parallel paths.
	for _, tc := range []struct{ rows, cols, block int }{
		{3, 50, 64}, {1, 7, 32}, {5, 45, 32}, {64, 172, 64}, {7, 1000, 128},
		{1, 1, 64}, {33, 97, 4096}, {1100, 1000, 64},
	} {
		w := gaussian(uint64(tc.rows*tc.cols), tc.rows*tc.cols, 0.02)
		w[0] = 0
		m, err := Quantize(w, tc.rows, tc.cols, Options{BlockSize: tc.block, DisableDoubleQuant: true})
		require.NoError(t, err)
		n := tc.rows * tc.cols
		nb := (n + tc.block - 1) / tc.block
		require.Len(t, m.absmax, nb)
		require.Len(t, m.packed, (n+1)/2)
		for b := range nb {
			var want float32
			for _, v := range w[b*tc.block : min(n, (b+1)*tc.block)] {
				want = max(want, float32(math.Abs(float64(v))))
			}
			require.Equalf(t, want, m.absmax[b], "%v block %d", tc, b)
		}
		for e, v := range w {
			want := byte(zeroCode)
			if a := m.absmax[e/tc.block]; a != 0 {
				want = referenceCode(v / a)
			}
			if got := m.code(e); got != want {
				t.Fatalf("%v element %d: code %d, want %d", tc, e, got, want)
			}
		}
		if n%2 == 1 {
			require.Equal(t, byte(0), m.packed[len(m.packed)-1]&15, "%v: odd tail nibble is padding", tc)
		}
	}
}

func TestCodeBucketsHoldOneMidpoint(t *testing.T) {
	// nf4Code relies on no bucket of order keys containing two midpoints.
	for i := range codeBuckets {
		low := int64(i-len(codeBuckets)/2) << bucketShift
		high := low + 1<<bucketShift - 1
		inside := 0
		for _, mk := range midpointKeys[:15] {
			if low <= mk && mk < high {
				inside++
			}
		}
		require.LessOrEqual(t, inside, 1, "bucket %d", i)
	}
	// And the code agrees with counting midpoints on both sides of every
	// bucket edge and every midpoint, and on a sweep of [−1.5, 1.5].
	var probes []float32
	for i := range codeBuckets {
		k := int32(int64(i-len(codeBuckets)/2) << bucketShift)
		probes = append(probes, fromOrderKey(k), fromOrderKey(k-1), fromOrderKey(k+1))
	}
	for _, m := range Midpoints() {
		for d := float32(-3); d <= 3; d++ {
			probes = append(probes, fromOrderKey(orderKey(m)+int32(d)))
		}
	}
	for v := float32(-1.5); v <= 1.5; v += 1.0 / 4096 {
		probes = append(probes, v)
	}
	for _, v := range probes {
		if math.IsNaN(float64(v)) { // bit patterns from keys beyond ±Inf
			continue
		}
		require.Equalf(t, referenceCode(v), nf4Code(v), "v = %v", v)
	}
}

// fromOrderKey inverts orderKey.
func fromOrderKey(k int32) float32 {
	return math.Float32frombits(uint32(k ^ (k >> 31 & math.MaxInt32)))
}

func TestOddElementCount(t *testing.T) {
	w := []float32{-1, -0.5, 0, 0.5, 1, 0.25, 0.75}
	m, err := Quantize(w, 1, 7, Options{DisableDoubleQuant: true})
	require.NoError(t, err)
	// Codes by hand from the codebook: −1→0, −0.5→2 (−0.525 is nearest),
	// 0→7, 0.5→12 (0.4407 vs 0.5626: 0.0593 vs 0.0626), 1→15, 0.25→10,
	// 0.75→14; the last byte holds 14 and a zero pad nibble.
	require.Equal(t, []byte{0x02, 0x7c, 0xfa, 0xe0}, m.packed)
	got := make([]float32, 7)
	require.NoError(t, m.DequantizeRows(got, 0, 1))
	cb := Codebook()
	require.Equal(t, []float32{cb[0], cb[2], cb[7], cb[12], cb[15], cb[10], cb[14]}, got)
}

func TestAllZeroBlock(t *testing.T) {
	for _, dq := range []bool{false, true} {
		w := gaussian(3, 4*64, 0.02)
		clear(w[64:128])
		m, err := Quantize(w, 4, 64, Options{DisableDoubleQuant: !dq})
		require.NoError(t, err)
		if !dq {
			require.Equal(t, float32(0), m.Absmax()[1])
		}
		for e := 64; e < 128; e++ {
			require.Equal(t, byte(zeroCode), m.code(e))
		}
		got := make([]float32, 64)
		require.NoError(t, m.DequantizeRows(got, 1, 2))
		for _, v := range got {
			require.Zero(t, v)
		}
	}
	m, err := Quantize(make([]float32, 10), 2, 5, Options{})
	require.NoError(t, err)
	got := make([]float32, 10)
	require.NoError(t, m.DequantizeRows(got, 0, 2))
	require.Equal(t, make([]float32, 10), got)
}

func TestNonFiniteNamesBlock(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		// Small (scalar, one goroutine) and large (vector, parallel) inputs,
		// the bad value in a full block and in the partial last block.
		for _, tc := range []struct{ rows, cols, at int }{
			{2, 100, 150}, {2, 100, 5}, {1024, 1030, 1024*1030 - 3}, {1024, 1030, 700000},
		} {
			w := gaussian(1, tc.rows*tc.cols, 0.02)
			w[tc.at] = bad
			w[len(w)-1] = bad // a later one must not be the one reported
			_, err := Quantize(w, tc.rows, tc.cols, Options{})
			require.ErrorIs(t, err, quant.ErrNonFinite)
			want := fmt.Sprintf("block %d (row %d, column %d)", tc.at/64, tc.at/tc.cols, tc.at%tc.cols)
			require.ErrorContains(t, err, want)
		}
	}
}

func TestDoubleQuantization(t *testing.T) {
	const rows, cols = 512, 1024 // 8192 blocks of 64: 32 nested blocks
	w := gaussian(7, rows*cols, 0.02)
	plain, err := Quantize(w, rows, cols, Options{DisableDoubleQuant: true})
	require.NoError(t, err)
	dq, err := Quantize(w, rows, cols, Options{})
	require.NoError(t, err)
	require.True(t, dq.DoubleQuant())
	require.Equal(t, plain.packed, dq.packed, "double quantization changes only the absmax")

	exact, approx := plain.Absmax(), dq.Absmax()
	var sum float64
	for _, a := range exact {
		sum += float64(a)
	}
	require.InDelta(t, sum/float64(len(exact)), float64(dq.dq.offset), 1e-9)
	var worst, mean float64
	for b := range exact {
		rel := math.Abs(float64(approx[b]-exact[b])) / float64(exact[b])
		worst = max(worst, rel)
		mean += rel / float64(len(exact))
	}
	t.Logf("absmax relative error: mean %.3g, worst %.3g", mean, worst)
	// The dynamic map's codes in [0.1, 1] are 0.9/64 apart, so a centered
	// absmax is off by at most 0.7% of its nested absmax (the largest
	// |absmax − mean| of its 256 blocks); relative to a small absmax next to
	// an outlier that reaches ~1%. Measured: mean 0.0016, worst 0.0092.
	require.Less(t, mean, 0.0025, "mean relative absmax error")
	require.Less(t, worst, 0.012, "largest relative absmax error")

	mse := func(m *Matrix) float64 {
		got := make([]float32, rows*cols)
		require.NoError(t, m.Dequantize(got))
		var s float64
		for i := range w {
			d := float64(got[i] - w[i])
			s += d * d
		}
		return s / float64(len(w))
	}
	msePlain, mseDQ := mse(plain), mse(dq)
	// formats.md: NF4 MSE 3.38e-6 on N(0, 0.02) at block 64.
	require.InDelta(t, 3.38e-6, msePlain, 0.03e-6)
	// Measured +0.06%: double quantization costs almost nothing.
	require.Less(t, mseDQ/msePlain, 1.002)
	t.Logf("MSE without DQ %.4g, with DQ %.4g (ratio %.5f); worst absmax relative error %.4g",
		msePlain, mseDQ, mseDQ/msePlain, worst)
}

func TestBitsPerParam(t *testing.T) {
	w := gaussian(5, 4096*64, 0.02)
	plain, err := Quantize(w, 4096, 64, Options{DisableDoubleQuant: true})
	require.NoError(t, err)
	require.Equal(t, 4.5, plain.BitsPerParam())
	require.Equal(t, int64(4096*64/2+4*4096), plain.StorageBytes())

	dq, err := Quantize(w, 4096, 64, Options{})
	require.NoError(t, err)
	n := 4096.0 * 64
	require.InDelta(t, 4+8.0/64+32.0/(64*256)+32/n, dq.BitsPerParam(), 1e-12)
	require.Equal(t, int64(4096*64/2+4096+4*16+4), dq.StorageBytes())

	// The figure QLoRA quotes, on a 4096×4096 weight.
	big, err := Quantize(make([]float32, 4096*4096), 4096, 4096, Options{})
	require.NoError(t, err)
	require.InDelta(t, 4.127, big.BitsPerParam(), 0.0005)
	require.Equal(t, "nf4", big.Format())
}

func TestDequantizeRowsMatchesFull(t *testing.T) {
	for _, tc := range []struct {
		rows, cols, block int
		dq                bool
	}{
		{9, 45, 32, false}, {9, 45, 32, true}, {12, 172, 64, true}, {5, 256, 128, false}, {3, 4096, 4096, true},
	} {
		w := gaussian(11, tc.rows*tc.cols, 1)
		m, err := Quantize(w, tc.rows, tc.cols, Options{BlockSize: tc.block, DisableDoubleQuant: !tc.dq})
		require.NoError(t, err)
		full := make([]float32, tc.rows*tc.cols)
		require.NoError(t, m.Dequantize(full))
		// Element by element from the stored codes and absmax.
		absmax := m.Absmax()
		for e := range full {
			require.Equal(t, codebook[m.code(e)]*absmax[e/tc.block], full[e])
		}
		for start := 0; start <= tc.rows; start++ {
			for end := start; end <= tc.rows; end++ {
				got := make([]float32, (end-start)*tc.cols+3)
				got[len(got)-1] = 42
				require.NoError(t, m.DequantizeRows(got, start, end))
				require.Equal(t, full[start*tc.cols:end*tc.cols], got[:(end-start)*tc.cols], "%v rows [%d, %d)", tc, start, end)
				require.Equal(t, float32(42), got[len(got)-1], "wrote past the rows")
			}
		}
	}
}

func TestMulTMatchesDequantized(t *testing.T) {
	for _, tc := range []struct {
		rows, cols, block int
		dq                bool
	}{
		{9, 45, 32, false}, {12, 172, 64, true}, {70, 256, 64, true}, {33, 1000, 128, false}, {5, 4096, 4096, true},
		{6, 4128, 32, true}, {5, 4100, 32, false}, // more than 64 blocks per row
		{2048, 1024, 64, true}, // large enough to be split across goroutines
	} {
		w := gaussian(13, tc.rows*tc.cols, 0.02)
		m, err := Quantize(w, tc.rows, tc.cols, Options{BlockSize: tc.block, DisableDoubleQuant: !tc.dq})
		require.NoError(t, err)
		deq := make([]float32, tc.rows*tc.cols)
		require.NoError(t, m.Dequantize(deq))
		for _, n := range []int{0, 1, 2, 3, 4, 5, 8, 16, 17} {
			if tc.rows*tc.cols > 1<<20 && n > 4 {
				continue
			}
			x := gaussian(uint64(n)+17, n*tc.cols, 1)
			y := make([]float32, n*tc.rows)
			for i := range y {
				y[i] = float32(math.NaN()) // y must be overwritten
			}
			require.NoError(t, m.MulT(y, x, n))
			for i := range n {
				for r := range tc.rows {
					var want, mag float64
					for c := range tc.cols {
						p := float64(x[i*tc.cols+c]) * float64(deq[r*tc.cols+c])
						want += p
						mag += math.Abs(p)
					}
					// float32 accumulation over ≤ 4096 terms in 16 lanes or 4
					// partial sums: a relative error of 1e-5 of Σ|x·w| leaves
					// room for √(terms)·2⁻²⁴ growth but catches any wrong
					// weight (each weight is ≥ 1/4096 of Σ|x·w| on average).
					require.InDeltaf(t, want, float64(y[i*tc.rows+r]), 1e-5*mag+1e-30,
						"%v n=%d y[%d, %d]", tc, n, i, r)
				}
			}
		}
	}
}

func TestNoAllocations(t *testing.T) {
	// A product large enough to be split across goroutines allocates only the
	// closure that starts them: no buffers.
	big, err := Quantize(gaussian(17, 2048*2048, 0.02), 2048, 2048, Options{})
	require.NoError(t, err)
	x, y := gaussian(19, 2048, 1), make([]float32, 2048)
	require.LessOrEqual(t, testing.AllocsPerRun(5, func() {
		if err := big.MulT(y, x, 1); err != nil {
			t.Fatal(err)
		}
	}), 1.0, "parallel MulT")

	w := gaussian(17, 64*1024, 0.02)
	for _, dq := range []bool{false, true} {
		m, err := Quantize(w, 64, 1024, Options{DisableDoubleQuant: !dq})
		require.NoError(t, err)
		dst := make([]float32, 64*1024)
		require.Zero(t, testing.AllocsPerRun(20, func() {
			if err := m.DequantizeRows(dst, 3, 40); err != nil {
				t.Fatal(err)
			}
		}), "DequantizeRows")
		for _, n := range []int{1, 4, 16} {
			x := gaussian(19, n*1024, 1)
			y := make([]float32, n*64)
			require.Zerof(t, testing.AllocsPerRun(20, func() {
				if err := m.MulT(y, x, n); err != nil {
					t.Fatal(err)
				}
			}), "MulT n=%d", n)
		}
	}
}

func TestErrors(t *testing.T) {
	w := make([]float32, 64)
	for _, bs := range []int{16, 48, 8192, -64, 100} {
		_, err := Quantize(w, 1, 64, Options{BlockSize: bs})
		require.ErrorIs(t, err, quant.ErrBlockSize, "block size %d", bs)
	}
	for _, bs := range []int{32, 64, 128, 256, 512, 1024, 2048, 4096} {
		m, err := Quantize(w, 1, 64, Options{BlockSize: bs})
		require.NoError(t, err)
		require.Equal(t, bs, m.BlockSize())
	}
	_, err := Quantize(w, 2, 64, Options{})
	require.ErrorContains(t, err, "64 elements, shape [2, 64] needs 128")
	_, err = Quantize(w, 0, 64, Options{})
	require.ErrorContains(t, err, "must be positive")
	_, err = Quantize(nil, -1, -1, Options{})
	require.ErrorContains(t, err, "must be positive")
	_, err = Quantize(w, math.MaxInt/2, 64, Options{})
	require.ErrorContains(t, err, "too large")

	m, err := Quantize(make([]float32, 6*10), 6, 10, Options{})
	require.NoError(t, err)
	require.ErrorContains(t, m.DequantizeRows(make([]float32, 60), 2, 7), "out of bounds")
	require.ErrorContains(t, m.DequantizeRows(make([]float32, 60), -1, 2), "out of bounds")
	require.ErrorContains(t, m.DequantizeRows(make([]float32, 60), 3, 2), "out of bounds")
	require.ErrorContains(t, m.DequantizeRows(make([]float32, 19), 1, 3), "destination has 19 elements")
	require.ErrorContains(t, m.MulT(make([]float32, 6), make([]float32, 9), 1), "x has 9 elements")
	require.ErrorContains(t, m.MulT(make([]float32, 5), make([]float32, 10), 1), "y has 5 elements")
	require.ErrorContains(t, m.MulT(nil, nil, -1), "out of range")
	require.ErrorContains(t, m.Dequantize(make([]float32, 59)), "59 elements")
}

// TestMulTRowsMatchesMulT: products assembled from MulTRows pieces are MulT's
// bits, each piece writes only its own entries, and bad ranges are errors.
func TestMulTRowsMatchesMulT(t *testing.T) {
	const rows, cols = 70, 288
	m, err := Quantize(gaussian(21, rows*cols, 0.02), rows, cols, Options{})
	require.NoError(t, err)
	for _, n := range []int{1, 4, 5} {
		x := gaussian(uint64(n)+3, n*cols, 1)
		want := make([]float32, n*rows)
		require.NoError(t, m.MulT(want, x, n))
		got := make([]float32, n*rows)
		for i := range got {
			got[i] = float32(math.NaN())
		}
		for _, cut := range [][2]int{{0, 13}, {13, 64}, {64, 70}} {
			require.NoError(t, m.MulTRows(got, x, n, cut[0], cut[1]))
			for i := range n {
				for r := range rows {
					inside := r >= cut[0] && r < cut[1]
					if v := got[i*rows+r]; inside && v != want[i*rows+r] {
						t.Fatalf("n %d rows %v: y[%d, %d] = %v, MulT gives %v", n, cut, i, r, v, want[i*rows+r])
					} else if !inside && r >= cut[1] && !math.IsNaN(float64(v)) {
						t.Fatalf("n %d rows %v: y[%d, %d] written (%v) outside the range", n, cut, i, r, v)
					}
				}
			}
		}
	}
	x := make([]float32, cols)
	y := make([]float32, rows)
	for _, bad := range [][2]int{{-1, 3}, {3, rows + 1}, {5, 4}} {
		require.Error(t, m.MulTRows(y, x, 1, bad[0], bad[1]), "rows %v", bad)
	}
	require.Error(t, m.MulTRows(y[:rows-1], x, 1, 0, 1))
	require.Error(t, m.MulTRows(y, x[:cols-1], 1, 0, 1))
}
