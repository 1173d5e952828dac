package kernels

import (
	"math"
	"testing"
)

func TestSigmoids(t *testing.T) {
	x := []float32{-200, -90, -20, -1, -1e-3, 0, 1e-3, 1, 20, 90, 200}
	got := make([]float32, len(x))
	sigmoids(got, x)
	for i, v := range x {
		want := 1 / (1 + math.Exp(-float64(v)))
		if math.Abs(float64(got[i])-want) > 1e-7*math.Max(want, 1e-30) && math.Abs(float64(got[i])-want) > 1e-38 {
			t.Errorf("sigmoid(%v) = %v, want %v", v, got[i], want)
		}
	}
}
