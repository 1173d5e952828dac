package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golora/golora/internal/cpu"
	"github.com/golora/golora/internal/half"
)

// TestLowRankAsmMatchesModel checks the shrink, expand and conversion
// assembly of every level this CPU runs (AVX2 and up, capped by
// GOLORA_KERNELS; binary16 at AVX2 only with F16C): bit for bit against a Go
// model of the AVX-512 kernels' fused multiply-adds, which is how the AVX2
// ones are held to the AVX-512 bits on a CPU without AVX-512, and within
// float32 rounding against the Go code that runs without assembly. The
// shapes have odd and even numbers of chunks and ranks, and the largest are
// split over several assembly calls.
func TestLowRankAsmMatchesModel(t *testing.T) {
	if cpu.Best() < cpu.AVX2 {
		t.Skip("no assembly level: " + cpu.EnvVar + " or the CPU")
	}
	rng := rand.New(rand.NewPCG(12, 12))
	for l := cpu.AVX2; l <= cpu.Best(); l++ {
		for _, f16 := range []bool{false, true} {
			if f16 && l == cpu.AVX2 && !hasF16C {
				continue
			}
			for _, sh := range []struct{ r, width int }{
				{1, 16}, {2, 32}, {3, 48}, {8, 288}, {5, 40}, {16, 768},
				{5, lowRankCallWork / 4},                // shrink: two calls of 4 rows and 1
				{lowRankCallWork / 3264, 3264 + 48 + 5}, // expand: a call of 3264 columns and one of 48
			} {
				checkLowRankAsm(t, rng, l, f16, sh.r, sh.width)
			}
		}
		src := make([]uint16, 1<<17+35) // three conversion calls
		for i := range src {
			src[i] = uint16(i * 977)
		}
		got, want := make([]float32, len(src)), make([]float32, len(src))
		f16ToFloat32s(l, got, src)
		f16ToFloat32s(cpu.Generic, want, src)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
				t.Fatalf("%v: %#04x converts to %g, Go %g", l, src[i], got[i], want[i])
			}
		}
	}
}

// checkLowRankAsm runs the shrink and expand of one shape at level l.
func checkLowRankAsm(t *testing.T, rng *rand.Rand, l cpu.Level, f16 bool, r, width int) {
	t.Helper()
	name := l.String() + " f32"
	x := genRandomSlice(rng, width, 1)
	a := genRandomSlice(rng, r*width, 1)
	var a16 []uint16
	if f16 {
		name = l.String() + " f16"
		a16 = make([]uint16, len(a))
		for i, v := range a {
			a16[i] = half.Float32ToF16(v)
			a[i] = half.F16ToFloat32(a16[i])
		}
	}
	fail := func(what string, i int, got, want float32) {
		t.Helper()
		t.Fatalf("%s r=%d width=%d: %s[%d] = %g, want %g", name, r, width, what, i, got, want)
	}
	var fa []float32 // a as shrink and expand take it: nil with a16
	if !f16 {
		fa = a
	}
	const scale = 0.75
	s, sGo := make([]float32, r), make([]float32, r)
	shrink(l, s, x, fa, a16, scale)
	shrink(cpu.Generic, sGo, x, fa, a16, scale)
	for k := range s {
		if width%16 == 0 {
			if want := shrinkModel(x, a[k*width:(k+1)*width], scale); math.Float32bits(s[k]) != math.Float32bits(want) {
				fail("shrink model", k, s[k], want)
			}
		}
		var mag float64
		for i, v := range x {
			mag += math.Abs(float64(v) * float64(a[k*width+i]) * scale)
		}
		if !near(s[k], sGo[k], mag) {
			fail("shrink Go", k, s[k], sGo[k])
		}
	}
	// The expand reads a as Bᵀ [r, width]; y's first multiple of 16 columns
	// take the kernels, the rest Go.
	y0 := genRandomSlice(rng, width, 1)
	y, yGo := append([]float32(nil), y0...), append([]float32(nil), y0...)
	expand(l, y, s, fa, a16, width)
	expand(cpu.Generic, yGo, s, fa, a16, width)
	for o := range y {
		want := yGo[o]
		if o < width&^15 {
			want = expandModel(y0[o], s, a[o:], width)
			mag := math.Abs(float64(y0[o]))
			for k, v := range s {
				mag += math.Abs(float64(v) * float64(a[k*width+o]))
			}
			if !near(y[o], yGo[o], mag) {
				fail("expand Go", o, y[o], yGo[o])
			}
		}
		if math.Float32bits(y[o]) != math.Float32bits(want) {
			fail("expand", o, y[o], want)
		}
	}
}

// near reports whether two float32 sums of terms whose magnitudes add up to
// mag agree within float32 rounding.
func near(a, b float32, mag float64) bool {
	return math.Abs(float64(a)-float64(b)) <= 1e-5*mag+1e-6
}

// shrinkModel is one row of shrinkF32AVX512 in Go: 16 lanes, chunk c of x·a
// fused into accumulator c mod 2, the two added lane by lane, the lanes
// folded in halves (as HSUM16), times scale.
func shrinkModel(x, a []float32, scale float32) float32 {
	var acc [2][16]float32
	for c := 0; c < len(x)/16; c++ {
		for j := range 16 {
			acc[c%2][j] = fma32(x[16*c+j], a[16*c+j], acc[c%2][j])
		}
	}
	l := acc[0]
	for j := range l {
		l[j] += acc[1][j]
	}
	for half := 8; half >= 1; half /= 2 {
		for j := range half {
			l[j] += l[j+half]
		}
	}
	return l[0] * scale
}

// expandModel is one column of expandF32AVX512 in Go: y with rank k's
// product s[k]·bt[k·ld] fused in for even k, a zero with those of odd k, the
// two added.
func expandModel(y float32, s, bt []float32, ld int) float32 {
	var odd float32
	for k, v := range s {
		if k%2 == 0 {
			y = fma32(v, bt[k*ld], y)
		} else {
			odd = fma32(v, bt[k*ld], odd)
		}
	}
	return y + odd
}
