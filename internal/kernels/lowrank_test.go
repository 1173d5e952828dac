package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golora/golora/internal/cpu"
	"github.com/golora/golora/internal/half"
)

// TestLowRank checks the shrink and expand, float32 and binary16, against
// float64 sums of the same (rounded) values, for ranks 1 to 16 and lengths
// that are and are not multiples of 16.
func TestLowRank(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	for _, r := range []int{1, 2, 3, 8, 16} {
		for _, width := range []int{16, 40, 288, 768} {
			x := genRandomSlice(rng, width, 1)
			a := genRandomSlice(rng, r*width, 1)
			a16 := make([]uint16, len(a))
			a16f := make([]float32, len(a)) // the binary16 values as float32
			for i, v := range a {
				a16[i] = half.Float32ToF16(v)
				a16f[i] = half.F16ToFloat32(a16[i])
			}
			check := func(name string, got []float32, want func(i int) (float64, float64)) {
				t.Helper()
				for i, g := range got {
					w, mag := want(i)
					if math.Abs(float64(g)-w) > 1e-5*mag+1e-6 {
						t.Fatalf("%s r=%d width=%d: [%d] = %g, want %g", name, r, width, i, g, w)
					}
				}
			}
			const scale = 0.5
			for _, tc := range []struct {
				name string
				w    []float32
				run  func(s []float32)
			}{
				{"shrink", a, func(s []float32) { LowRankShrink(s, x, a, r, width, scale) }},
				{"shrinkF16", a16f, func(s []float32) { LowRankShrinkF16(s, x, a16, r, width, scale) }},
			} {
				s := make([]float32, r)
				tc.run(s)
				check(tc.name, s, func(k int) (float64, float64) {
					var sum, mag float64
					for i := range width {
						p := float64(x[i]) * float64(tc.w[k*width+i])
						sum, mag = sum+p, mag+math.Abs(p)
					}
					return scale * sum, scale * mag
				})
			}
			s := x[:r]
			y0 := genRandomSlice(rng, width, 1)
			for _, tc := range []struct {
				name string
				w    []float32
				run  func(y []float32)
			}{
				{"expand", a, func(y []float32) { LowRankExpand(y, s, a, r, width) }},
				{"expandF16", a16f, func(y []float32) { LowRankExpandF16(y, s, a16, r, width) }},
			} {
				y := append([]float32(nil), y0...)
				tc.run(y)
				check(tc.name, y, func(o int) (float64, float64) {
					sum, mag := float64(y0[o]), math.Abs(float64(y0[o]))
					for k := range r {
						p := float64(s[k]) * float64(tc.w[k*width+o])
						sum, mag = sum+p, mag+math.Abs(p)
					}
					return sum, mag
				})
			}
		}
	}
}

func TestF16ToFloat32s(t *testing.T) {
	src := make([]uint16, 70)
	for i := range src {
		src[i] = uint16(i*977 + 13)
	}
	dst := make([]float32, len(src))
	F16ToFloat32s(dst, src)
	for i, h := range src {
		want := half.F16ToFloat32(h)
		if math.Float32bits(dst[i]) != math.Float32bits(want) && !(math.IsNaN(float64(dst[i])) && math.IsNaN(float64(want))) {
			t.Fatalf("%#04x: %g, want %g", h, dst[i], want)
		}
	}
}

// BenchmarkLowRank pairs the shrink and expand of this CPU's kernel level
// (capped by GOLORA_KERNELS) with the Go code, float32 and binary16, on one
// row of a stories15M-shaped rank-8 adapter term (widths 288 and 768, a
// serving step's shapes). GMAC/s counts the multiply-adds.
func BenchmarkLowRank(b *testing.B) {
	const r = 8
	rng := rand.New(rand.NewPCG(13, 13))
	for _, f16 := range []bool{false, true} {
		for _, width := range []int{288, 768} {
			x := genRandomSlice(rng, width, 1)
			a := genRandomSlice(rng, r*width, 1)
			s := genRandomSlice(rng, r, 1)
			y := make([]float32, width)
			var a16 []uint16
			prec := "f32"
			if f16 {
				prec = "f16"
				a16 = make([]uint16, len(a))
				for i, v := range a {
					a16[i] = half.Float32ToF16(v)
				}
				a = nil
			}
			for _, l := range []cpu.Level{cpu.Generic, lowRankLevel(f16)} {
				for _, op := range []struct {
					name string
					run  func()
				}{
					{"shrink", func() { shrink(l, s, x, a, a16, 0.5) }},
					{"expand", func() { expand(l, y, s, a, a16, width) }},
				} {
					b.Run(fmt.Sprintf("%s/%s/width=%d/%v", prec, op.name, width, l), func(b *testing.B) {
						for b.Loop() {
							op.run()
						}
						b.ReportMetric(float64(r*width*b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
					})
				}
			}
		}
	}
}
