package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golora/golora/internal/cpu"
)

// TestAttendKernelsMatchGeneric: the score and value kernels of every level
// this CPU supports (capped by GOLORA_KERNELS) give the generic code's bits,
// for head dimensions that take the vector path (multiples of 16) and one
// that does not.
func TestAttendKernelsMatchGeneric(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, hd := range []int{16, 24, 48, 64, 128} {
		for _, n := range []int{1, 7, 130} {
			stride := 3*hd + 5
			q := genRandomSlice(rng, hd, 1)
			keys := genRandomSlice(rng, (n-1)*stride+hd, 1)
			values := genRandomSlice(rng, (n-1)*stride+hd, 1)
			w := genRandomSlice(rng, n, 1)
			wantS := make([]float32, n)
			attendScores(cpu.Generic, wantS, q, keys, stride, 0.125)
			wantV := make([]float32, hd)
			attendValues(cpu.Generic, wantV, w, values, stride)
			for l := cpu.AVX2; l <= cpu.Best(); l++ {
				gotS := make([]float32, n)
				attendScores(l, gotS, q, keys, stride, 0.125)
				gotV := make([]float32, hd)
				attendValues(l, gotV, w, values, stride)
				for i := range wantS {
					if math.Float32bits(gotS[i]) != math.Float32bits(wantS[i]) {
						t.Fatalf("%v hd %d n %d: score %d = %v, generic %v", l, hd, n, i, gotS[i], wantS[i])
					}
				}
				for i := range wantV {
					if math.Float32bits(gotV[i]) != math.Float32bits(wantV[i]) {
						t.Fatalf("%v hd %d n %d: value %d = %v, generic %v", l, hd, n, i, gotV[i], wantV[i])
					}
				}
			}
			// The generic order is a dot product all the same.
			for i := range wantS {
				var exact float64
				for k := range hd {
					exact += float64(q[k]) * float64(keys[i*stride+k])
				}
				if d := math.Abs(float64(wantS[i]) - 0.125*exact); d > 1e-5*math.Sqrt(float64(hd)) {
					t.Fatalf("hd %d: score %d = %v, float64 %v", hd, i, wantS[i], 0.125*exact)
				}
			}
		}
	}
}
