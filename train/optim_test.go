package train

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAdamWFirstStepsByHand(t *testing.T) {
	// Worked by hand from the update rule (PyTorch's AdamW):
	// step 1, g = 0.5: m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25,
	// p = 1·(1 − 0.1·0.01) − 0.1·0.5/(0.5+1e-8) = 0.999 − 0.1 = 0.899.
	// step 2, g = −1: m = 0.045 − 0.1 = −0.055, v = 0.00024975 + 0.001 = 0.00124975,
	// m̂ = −0.055/0.19 = −0.289474, v̂ = 0.00124975/0.001999 = 0.625188,
	// p = 0.899·0.999 + 0.1·0.289474/0.790688 = 0.898101 + 0.036610 = 0.934711.
	p := []param{{Name: "w", Value: []float32{1}, Grad: []float32{0.5}}}
	o := newAdamW(0.01)
	require.NoError(t, o.Step(p, 0.1))
	require.InDelta(t, 0.899, p[0].Value[0], 1e-6)
	p[0].Grad[0] = -1
	require.NoError(t, o.Step(p, 0.1))
	require.InDelta(t, 0.934711, p[0].Value[0], 2e-6)
	require.Equal(t, 2, o.Steps())
}

func TestAdamWMinimizesQuadratic(t *testing.T) {
	// f(x) = Σ (x_i − c_i)²; AdamW without decay must reach c.
	c := []float32{3, -2, 0.5}
	p := []param{{Name: "x", Value: make([]float32, 3), Grad: make([]float32, 3)}}
	o := newAdamW(0)
	for range 2000 {
		for i := range c {
			p[0].Grad[i] = 2 * (p[0].Value[i] - c[i])
		}
		require.NoError(t, o.Step(p, 0.05))
	}
	for i := range c {
		require.InDelta(t, c[i], p[0].Value[i], 1e-3)
	}
}

func TestAdamWRejectsChangedParams(t *testing.T) {
	o := newAdamW(0)
	require.NoError(t, o.Step([]param{{Name: "a", Value: []float32{1}, Grad: []float32{1}}}, 0.1))
	require.Error(t, o.Step([]param{{Name: "a", Value: []float32{1, 2}, Grad: []float32{1, 2}}}, 0.1))
	require.Error(t, o.Step(nil, 0.1))
}

func TestClipGradNorm(t *testing.T) {
	p := []param{{Grad: []float32{3}}, {Grad: []float32{4}}}
	norm := clipGradNorm(p, 1)
	require.InDelta(t, 5, norm, 1e-9)
	require.InDelta(t, 0.6, p[0].Grad[0], 1e-6)
	require.InDelta(t, 0.8, p[1].Grad[0], 1e-6)
	// Below the limit nothing changes.
	require.InDelta(t, 1, clipGradNorm(p, 2), 1e-6)
	require.InDelta(t, 0.6, p[0].Grad[0], 1e-6)
	nan := []param{{Grad: []float32{float32(math.NaN())}}}
	require.True(t, math.IsNaN(clipGradNorm(nan, 1)))
}

func TestSchedule(t *testing.T) {
	s := schedule{Peak: 1, Warmup: 3, Total: 13, Cosine: true}
	require.InDelta(t, 0.25, s.At(0), 1e-12)
	require.InDelta(t, 0.75, s.At(2), 1e-12)
	require.InDelta(t, 1, s.At(3), 1e-12)
	require.InDelta(t, 0.5, s.At(8), 1e-12) // halfway through the decay: cos(π/2) = 0
	require.InDelta(t, 0, s.At(13), 1e-12)
	c := schedule{Peak: 2e-4, Warmup: 0}
	require.Equal(t, 2e-4, c.At(0))
	require.Equal(t, 2e-4, c.At(1000))
}
