package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAttendCachedMatchesForward: the decode form over a KV cache gives, for
// the query at position i, the row i of the batched causal form (the
// generator and the training graph compute the same attention).
func TestAttendCachedMatchesForward(t *testing.T) {
	const T, hd, heads = 7, 8, 3 // query stride heads·hd; one key/value head
	rng := rand.New(rand.NewPCG(3, 4))
	q := genRandomSlice(rng, T*heads*hd, 1)
	k := genRandomSlice(rng, T*hd, 1)
	v := genRandomSlice(rng, T*hd, 1)
	a := Attention{SeqLen: T, HeadDim: hd, QStride: heads * hd, KVStride: hd}
	out := make([]float32, T*heads*hd)
	p := make([]float32, T*T)
	for h := range heads {
		a.Forward(out[h*hd:], p, q[h*hd:], k, v)
	}
	got := make([]float32, hd)
	scores := make([]float32, T)
	for i := range T {
		for h := range heads {
			at := i*heads*hd + h*hd
			AttendCached(got, scores[:i+1], q[at:at+hd], k, v, hd)
			for j, g := range got {
				if want := out[at+j]; math.Abs(float64(g-want)) > 1e-5 {
					t.Fatalf("position %d head %d element %d: decode %v, batched %v", i, h, j, g, want)
				}
			}
		}
	}
}
