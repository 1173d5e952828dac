package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestCrossEntropyWithGrad checks the fused loss and gradient against
// CrossEntropy and CrossEntropyBackward, which compute the same maximum and
// sum of exponentials, so the results agree to the bit.
func TestCrossEntropyWithGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, n := range []int{1, 7, 16, 33, 1000} {
		row := genRandomSlice(rng, n, 8)
		target := rng.IntN(n)
		want := CrossEntropy(make([]float32, n), row, target)
		wantGrad := make([]float32, n)
		CrossEntropyBackward(wantGrad, row, target, 0.25)
		got := CrossEntropyWithGrad(row, target, 0.25)
		if got != want || math.IsNaN(got) {
			t.Errorf("n %d: loss %v, CrossEntropy %v", n, got, want)
		}
		for i := range row {
			if row[i] != wantGrad[i] {
				t.Errorf("n %d: gradient[%d] = %v, CrossEntropyBackward %v", n, i, row[i], wantGrad[i])
				break
			}
		}
	}
}
