package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAttendCachedVecMatchesAttendCached compares the vector attention with
// AttendCached for head sizes the kernels take (16, 48, 64, 128) and one
// they leave to AttendCached (40), over 1 to 70 cached positions.
func TestAttendCachedVecMatchesAttendCached(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, hd := range []int{16, 40, 48, 64, 128} {
		for _, n := range []int{1, 3, 4, 5, 70} {
			stride := 3 * hd
			q := make([]float32, hd)
			keys, values := make([]float32, n*stride), make([]float32, n*stride)
			for _, s := range [][]float32{q, keys, values} {
				for i := range s {
					s[i] = float32(rng.NormFloat64())
				}
			}
			got, want := make([]float32, hd), make([]float32, hd)
			AttendCachedVec(got, make([]float32, n), q, keys[hd:], values[hd:], stride)
			AttendCached(want, make([]float32, n), q, keys[hd:], values[hd:], stride)
			for i := range got {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("hd %d, %d positions: out[%d] = %g, AttendCached gives %g", hd, n, i, got[i], want[i])
				}
			}
		}
	}
}
