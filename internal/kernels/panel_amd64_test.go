//go:build amd64

package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// panelKernels returns the assembly mulPanel kernels this CPU runs (under
// GOLORA_KERNELS), by name: on an AVX-512 machine both, so that the AVX2
// kernel is checked there too.
func panelKernels() map[string]func(t, w []float32, rows int, xp []float32, in int) {
	k := map[string]func(t, w []float32, rows int, xp []float32, in int){}
	if useAVX2 {
		k["avx2"] = mulPanelAVX2
	}
	if useAVX512 {
		k["avx512"] = mulPanelAVX512
	}
	return k
}

// TestMulPanelKernelsFuseInOrder checks the assembly kernels bit for bit
// against their definition: element [r, j] is the chain of fused
// multiply-adds acc = w[r, k]·xp[k, j] + acc over k in order from acc = 0,
// each rounded once. So the AVX2 and AVX-512 kernels give the same bits,
// and a batch's logits do not depend on which one the CPU has. Rows are
// whole blocks of the kernels (a remnant runs in Go, whose unfused
// multiply and add TestMulPanelKernelMatchesGo compares within rounding).
func TestMulPanelKernelsFuseInOrder(t *testing.T) {
	kernels := panelKernels()
	if len(kernels) == 0 {
		t.Skip("no assembly panel kernel at this level")
	}
	rng := rand.New(rand.NewPCG(10, 10))
	const rows = 3 * panelRows // 12 + 6 rows for AVX-512, 6 × 3 for AVX2
	for _, in := range []int{1, 2, 37, 288} {
		w := genRandomSlice(rng, rows*in, 1)
		xp := genRandomSlice(rng, in*PanelWidth, 1)
		want := make([]float32, rows*PanelWidth)
		for r := range rows {
			for j := range PanelWidth {
				var acc float32
				for k := range in {
					acc = fma32(w[r*in+k], xp[k*PanelWidth+j], acc)
				}
				want[r*PanelWidth+j] = acc
			}
		}
		for name, kernel := range kernels {
			got := make([]float32, rows*PanelWidth+1)
			got[len(got)-1] = -99
			kernel(got[:rows*PanelWidth], w, rows, xp, in)
			for i, v := range want {
				if math.Float32bits(got[i]) != math.Float32bits(v) {
					t.Fatalf("%s, in %d: element [%d, %d] = %g, want %g", name, in, i/PanelWidth, i%PanelWidth, got[i], v)
				}
			}
			if got[len(got)-1] != -99 {
				t.Fatalf("%s, in %d: wrote past the tile", name, in)
			}
		}
	}
}

// fma32 returns a·b + c rounded once to float32, as VFMADD231PS does. The
// product is exact in float64; its sum with c is rounded to float64 "to
// odd" (an inexact sum keeps an odd last bit, found from TwoSum's exact
// error), and a value rounded to odd with two bits more than float32 rounds
// to the nearest float32 as the exact value would.
func fma32(a, b, c float32) float32 {
	p, q := float64(a)*float64(b), float64(c)
	s := p + q
	z := s - p
	e := (p - (s - z)) + (q - z)
	if e != 0 && math.Float64bits(s)&1 == 0 {
		s = math.Nextafter(s, math.Copysign(math.Inf(1), e))
	}
	return float32(s)
}

// TestFMA32 checks the test's fma32 on cases where rounding the float64 sum
// to float32 would round twice, and on ordinary values against the float64
// FMA (exact there: the sum needs no more than float64's bits).
func TestFMA32(t *testing.T) {
	one := float32(1)
	ulp := math.Nextafter32(1, 2) - 1 // 2⁻²³
	half := ulp / 2                   // 1 + half is halfway between 1 and 1 + ulp
	cases := []struct{ a, b, c, want float32 }{
		{half, 1, one, one}, // a tie, to even
		// half·(1+ulp)·(1−ulp) = half − 2⁻⁷⁰: the exact sum is just
		// below the tie between 1+ulp and 1+2ulp, but its float64
		// rounding is the tie itself, which would round to even, up.
		{half * (1 + ulp), 1 - ulp, one + ulp, one + ulp},
		{3, 5, 7, 22},
	}
	for _, c := range cases {
		if got := fma32(c.a, c.b, c.c); got != c.want {
			t.Errorf("fma32(%g, %g, %g) = %.10g, want %.10g", c.a, c.b, c.c, got, c.want)
		}
	}
	rng := rand.New(rand.NewPCG(11, 11))
	for range 1000 {
		a, b, c := float32(rng.NormFloat64()), float32(rng.NormFloat64()), float32(rng.NormFloat64())
		if got, want := fma32(a, b, c), float32(math.FMA(float64(a), float64(b), float64(c))); got != want {
			t.Fatalf("fma32(%g, %g, %g) = %g, want %g", a, b, c, got, want)
		}
	}
}

// TestTranspose8AVX2 checks the AVX2 8×8 transpose against its definition
// with strides unlike the panels' and each other, and that it writes only
// its block.
func TestTranspose8AVX2(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 at this level")
	}
	const ldd, lds = 11, 13
	src := make([]float32, 8*lds)
	for i := range src {
		src[i] = float32(i + 1)
	}
	dst := make([]float32, 8*ldd)
	transpose8AVX2(&dst[0], ldd, &src[0], lds)
	for m := range 8 {
		for i := range ldd {
			var want float32
			if i < 8 {
				want = src[i*lds+m]
			}
			if got := dst[m*ldd+i]; got != want {
				t.Fatalf("dst[%d, %d] = %g, want %g", m, i, got, want)
			}
		}
	}
}

// TestTranspose8RowsAVX2 checks the transpose into rows of their own
// against its definition, at an offset in each row, and that it writes
// only its eight elements of each.
func TestTranspose8RowsAVX2(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 at this level")
	}
	const lds, off, width = 13, 3, 14
	src := make([]float32, 8*lds)
	for i := range src {
		src[i] = float32(i + 1)
	}
	var rows [8][]float32
	var dst [8]*float32
	for m := range rows {
		rows[m] = make([]float32, width)
		dst[m] = &rows[m][0]
	}
	transpose8RowsAVX2(&dst, off, &src[0], lds)
	for m, r := range rows {
		for k, got := range r {
			var want float32
			if i := k - off; i >= 0 && i < 8 {
				want = src[i*lds+m]
			}
			if got != want {
				t.Fatalf("row %d [%d] = %g, want %g", m, k, got, want)
			}
		}
	}
}
