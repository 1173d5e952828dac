package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAttendCachedFastMatchesAttendCached compares the two on random heads
// of several dimensions against caches of every length from 1 to 70 (blocks
// of 8 and 16 keys and tails) and a few long ones (AVX2's several calls
// per head, attendFastWork), keys and values strided as in a KV cache: they
// agree within float32 rounding.
func TestAttendCachedFastMatchesAttendCached(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, hd := range []int{16, 48, 64, 128, 40} {
		stride := 3*hd + 16
		ns := []int{300, 1030}
		for n := 1; n <= 70; n++ {
			ns = append(ns, n)
		}
		for _, n := range ns {
			q := genRandomSlice(rng, hd, 1)
			keys := genRandomSlice(rng, n*stride, 1)
			values := genRandomSlice(rng, n*stride, 1)
			off := hd // the second head of the cache
			want, got := make([]float32, hd), make([]float32, hd)
			AttendCached(want, make([]float32, n), q, keys[off:], values[off:], stride)
			AttendCachedFast(got, make([]float32, n), q, keys[off:], values[off:], stride)
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*max(1, math.Abs(float64(want[i]))) {
					t.Fatalf("hd %d n %d: out[%d] = %v, AttendCached gives %v", hd, n, i, got[i], want[i])
				}
			}
		}
	}
}

func BenchmarkAttendCached(b *testing.B) {
	const hd, heads, n = 48, 6, 48
	stride := hd * heads
	rng := rand.New(rand.NewPCG(1, 2))
	q := genRandomSlice(rng, stride, 1)
	keys, values := genRandomSlice(rng, n*stride, 1), genRandomSlice(rng, n*stride, 1)
	out, scores := make([]float32, stride), make([]float32, n)
	for _, f := range []struct {
		name string
		fn   func(out, scores, q, keys, values []float32, stride int)
	}{{"exact", AttendCached}, {"fast", AttendCachedFast}} {
		b.Run(f.name, func(b *testing.B) {
			for b.Loop() {
				for h := range heads {
					f.fn(out[h*hd:(h+1)*hd], scores, q[h*hd:(h+1)*hd], keys[h*hd:], values[h*hd:], stride)
				}
			}
		})
	}
}
