package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// argMaxLoop is the definition ArgMax must agree with: the first element
// greater than the best so far, the first NaN refused.
func argMaxLoop(x []float32) (int, bool) {
	if len(x) == 0 {
		return -1, false
	}
	best := 0
	for j, u := range x {
		if u != u {
			return j, false
		}
		if u > x[best] {
			best = j
		}
	}
	return best, true
}

// TestArgMaxMatchesLoop compares ArgMax with the loop on random vectors of
// many lengths (tails of every size around the vector blocks), with ties,
// signed zeros, infinities and NaNs placed at random.
func TestArgMaxMatchesLoop(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range append([]int{0, 1, 2, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 127, 128, 129, 200, 32000}, rng.IntN(5000)) {
		for trial := range 40 {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
				if trial%4 == 1 {
					x[i] = float32(rng.IntN(5)) // many ties
				}
			}
			if n > 0 {
				switch trial % 8 {
				case 2:
					x[rng.IntN(n)] = float32(math.NaN())
				case 3:
					x[rng.IntN(n)] = float32(math.Inf(1))
				case 4:
					for i := range x {
						x[i] = float32(math.Copysign(0, float64(rng.IntN(2)*2-1)))
					}
				case 5:
					for i := range x {
						x[i] = float32(math.Inf(-1))
					}
				}
			}
			want, wantOK := argMaxLoop(x)
			got, v, ok := ArgMax(x)
			if got != want || ok != wantOK {
				t.Fatalf("n %d trial %d: ArgMax = %d, %v; the loop gives %d, %v", n, trial, got, ok, want, wantOK)
			}
			if ok && math.Float32bits(v) != math.Float32bits(x[want]) {
				t.Fatalf("n %d trial %d: value %v, want x[%d] = %v", n, trial, v, want, x[want])
			}
		}
	}
}

func BenchmarkArgMax(b *testing.B) {
	x := genRandomSlice(rand.New(rand.NewPCG(1, 2)), 32000, 1)
	b.SetBytes(4 * int64(len(x)))
	b.Run("kernel", func(b *testing.B) {
		for b.Loop() {
			ArgMax(x)
		}
	})
	b.Run("loop", func(b *testing.B) {
		for b.Loop() {
			argMaxLoop(x)
		}
	})
}
