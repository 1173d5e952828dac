package loragraph

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestLoRAKernelProductsMatchLoops checks the rank-r products down
// (s·x·Aᵀ) and up (s·dY·B), which run row by row on the shrink kernel, against
// plain loops in float64, for widths that do and do not suit its vector
// code and for enough rows to split over goroutines.
func TestLoRAKernelProductsMatchLoops(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 8))
	fill := func(n int) []float32 { return normals(rng, n, 1) }
	for _, c := range []struct{ n, in, out, r int }{
		{n: 3, in: 16, out: 32, r: 1},
		{n: 70, in: 48, out: 80, r: 8},
		{n: 41, in: 40, out: 24, r: 4},
	} {
		k := &loraKernel{ga: &Adapter{}, n: c.n, in: c.in, out: c.out, r: c.r, scaling: 0.75}
		x, dy := fill(c.n*c.in), fill(c.n*c.out)
		a, b := fill(c.r*c.in), fill(c.out*c.r)
		u := make([]float32, c.n*c.r)

		k.down(u, x, a)
		check := func(what string, got []float32, want func(i, j int) float64) {
			t.Helper()
			for i := range c.n {
				for j := range c.r {
					w := want(i, j)
					if g := float64(got[i*c.r+j]); math.Abs(g-w) > 1e-5*(1+math.Abs(w)) {
						t.Fatalf("%+v: %s[%d,%d] = %v, want %v", c, what, i, j, g, w)
					}
				}
			}
		}
		check("down", u, func(i, j int) float64 {
			var sum float64
			for p := range c.in {
				sum += float64(x[i*c.in+p]) * float64(a[j*c.in+p])
			}
			return 0.75 * sum
		})
		k.up(u, dy, b)
		check("up", u, func(i, j int) float64 {
			var sum float64
			for o := range c.out {
				sum += float64(dy[i*c.out+o]) * float64(b[o*c.r+j])
			}
			return 0.75 * sum
		})
	}
}
