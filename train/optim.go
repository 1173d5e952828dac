package train

import (
	"errors"
	"fmt"
	"math"
)

// param is one trainable tensor as the optimizer sees it: its values and the
// gradient of the loss with respect to them, both updated in place.
type param struct {
	Name  string
	Value []float32
	Grad  []float32
}

// adamW is Adam with decoupled weight decay (Loshchilov & Hutter), the
// update PyTorch's torch.optim.AdamW makes:
//
//	p ← p − lr·wd·p
//	m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
//	p ← p − lr·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε)
//
// It is written here because gorgonia's AdamW never updates the weights.
// Moments are kept in float32 per parameter, keyed by position in the slice
// passed to Step, which must therefore be the same every step.
type adamW struct {
	Beta1, Beta2 float64
	Eps          float64
	WeightDecay  float64

	step int
	m, v [][]float32
}

// newAdamW returns an optimizer with PyTorch's defaults (β1 0.9, β2 0.999,
// ε 1e-8) and the given weight decay.
func newAdamW(weightDecay float64) *adamW {
	return &adamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay}
}

// Steps returns how many updates have been made.
func (o *adamW) Steps() int { return o.step }

// Step applies one update with learning rate lr to every parameter.
func (o *adamW) Step(params []param, lr float64) error {
	if o.m == nil {
		o.m = make([][]float32, len(params))
		o.v = make([][]float32, len(params))
		for i, p := range params {
			o.m[i] = make([]float32, len(p.Value))
			o.v[i] = make([]float32, len(p.Value))
		}
	}
	if len(params) != len(o.m) {
		return fmt.Errorf("train: AdamW got %d parameters, was set up with %d", len(params), len(o.m))
	}
	for i, p := range params {
		if len(p.Value) != len(o.m[i]) || len(p.Grad) != len(p.Value) {
			return fmt.Errorf("train: AdamW parameter %q: value %d, gradient %d, moments %d elements",
				p.Name, len(p.Value), len(p.Grad), len(o.m[i]))
		}
	}
	o.step++
	b1, b2 := o.Beta1, o.Beta2
	c1 := 1 - math.Pow(b1, float64(o.step))
	c2 := 1 - math.Pow(b2, float64(o.step))
	decay := float32(1 - lr*o.WeightDecay)
	stepSize := lr / c1
	sqrtC2 := math.Sqrt(c2)
	for i, p := range params {
		m, v := o.m[i], o.v[i]
		for j, g32 := range p.Grad {
			g := float64(g32)
			mj := b1*float64(m[j]) + (1-b1)*g
			vj := b2*float64(v[j]) + (1-b2)*g*g
			m[j], v[j] = float32(mj), float32(vj)
			denom := math.Sqrt(vj)/sqrtC2 + o.Eps
			p.Value[j] = p.Value[j]*decay - float32(stepSize*mj/denom)
		}
	}
	return nil
}

// Moments returns the optimizer's state for checkpointing: the step count and
// the first and second moments of each parameter (shared, not copied).
func (o *adamW) Moments() (step int, m, v [][]float32) { return o.step, o.m, o.v }

// SetMoments restores state saved by Moments.
func (o *adamW) SetMoments(step int, m, v [][]float32) error {
	if step < 0 || len(m) != len(v) {
		return errors.New("train: inconsistent AdamW state")
	}
	for i := range m {
		if len(m[i]) != len(v[i]) {
			return fmt.Errorf("train: AdamW state of parameter %d: %d first moments, %d second", i, len(m[i]), len(v[i]))
		}
	}
	o.step, o.m, o.v = step, m, v
	return nil
}

// clipGradNorm scales all gradients together so that their global L2 norm is
// at most maxNorm (PyTorch's clip_grad_norm_), and returns the norm before
// clipping. maxNorm ≤ 0 disables clipping. A non-finite norm is returned as
// is, with gradients untouched, for the caller to stop on.
func clipGradNorm(params []param, maxNorm float64) float64 {
	var sum float64
	for _, p := range params {
		for _, g := range p.Grad {
			sum += float64(g) * float64(g)
		}
	}
	norm := math.Sqrt(sum)
	if maxNorm > 0 && norm > maxNorm && !math.IsInf(norm, 0) && !math.IsNaN(norm) {
		scale := float32(maxNorm / (norm + 1e-6))
		for _, p := range params {
			for j := range p.Grad {
				p.Grad[j] *= scale
			}
		}
	}
	return norm
}

// schedule gives the learning rate for a step (counting from 0).
type schedule struct {
	Peak   float64 // learning rate after warmup
	Warmup int     // steps of linear warmup from 0
	Total  int     // total steps; cosine decays to Min at Total
	Cosine bool    // cosine decay after warmup; constant otherwise
	Min    float64 // floor of the cosine decay
}

// At returns the learning rate for step (0-based).
func (s schedule) At(step int) float64 {
	if step < s.Warmup {
		return s.Peak * float64(step+1) / float64(s.Warmup+1)
	}
	if !s.Cosine || s.Total <= s.Warmup {
		return s.Peak
	}
	progress := float64(step-s.Warmup) / float64(s.Total-s.Warmup)
	progress = min(progress, 1)
	return s.Min + (s.Peak-s.Min)*0.5*(1+math.Cos(math.Pi*progress))
}
