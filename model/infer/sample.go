package infer

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/golora/golora/internal/kernels"
)

// SamplerOptions chooses how the next token is picked from the logits.
type SamplerOptions struct {
	// Temperature divides the logits before the softmax. Zero means greedy
	// decoding: always the most likely token (the lowest id on ties).
	Temperature float64
	// TopP, in (0, 1), restricts sampling to the nucleus: the smallest set
	// of most likely tokens whose probability sums to at least TopP. Zero
	// or one disables it. Ignored by greedy decoding.
	TopP float64
	// Rand is the random source for sampling; it is required when
	// Temperature > 0 and never read otherwise. Seed it for reproducible
	// output, e.g. rand.New(rand.NewPCG(seed, 0)).
	Rand *rand.Rand
}

// Sampler picks token ids from logits. It keeps scratch buffers, so Sample
// does not allocate once they have grown to the vocabulary size; it is not
// safe for concurrent use.
type Sampler struct {
	opts  SamplerOptions
	probs []float64
	cands []tokenProb
}

// tokenProb is a token id with its unnormalized probability.
type tokenProb struct {
	id int
	p  float64
}

// NewSampler checks opts and returns a Sampler.
func NewSampler(opts SamplerOptions) (*Sampler, error) {
	s := new(Sampler)
	if err := s.Reset(opts); err != nil {
		return nil, err
	}
	return s, nil
}

// Reset checks opts and makes them s's, keeping s's scratch buffers (24
// bytes per token of the vocabulary, once a temperature above 0 has grown
// them), so that a server can hand one Sampler's memory from request to
// request. On an error, s is unchanged.
func (s *Sampler) Reset(opts SamplerOptions) error {
	switch {
	case !(opts.Temperature >= 0) || math.IsInf(opts.Temperature, 0):
		return fmt.Errorf("infer: sampler: temperature %v must be non-negative and finite", opts.Temperature)
	case !(opts.TopP >= 0 && opts.TopP <= 1):
		return fmt.Errorf("infer: sampler: top-p %v must be in [0, 1]", opts.TopP)
	case opts.Temperature > 0 && opts.Rand == nil:
		return errors.New("infer: sampler: temperature > 0 needs a random source (Rand)")
	}
	s.opts = opts
	return nil
}

// Sample returns the id of the next token given the logits of every token
// of the vocabulary. It returns an error if logits is empty, holds a NaN, or
// its largest value is ±Inf: the model's weights or inputs are broken.
func (s *Sampler) Sample(logits []float32) (int, error) {
	best, err := argmaxLogits(logits)
	if err != nil {
		return 0, err
	}
	if s.opts.Temperature == 0 {
		return best, nil
	}
	if cap(s.probs) < len(logits) {
		s.probs = make([]float64, len(logits))
	}
	probs := s.probs[:len(logits)]
	// Unnormalized softmax: exp((l − max)/T) is 1 at the best token, so the
	// sum is at least 1 and no normalization is needed to sample.
	m := float64(logits[best])
	invT := 1 / s.opts.Temperature
	var sum float64
	for i, l := range logits {
		p := math.Exp((float64(l) - m) * invT)
		probs[i] = p
		sum += p
	}
	r := s.opts.Rand.Float64()
	if p := s.opts.TopP; p > 0 && p < 1 {
		nucleus := s.nucleus(probs, sum, p)
		var kept float64
		for _, c := range nucleus {
			kept += c.p
		}
		target := r * kept
		for _, c := range nucleus {
			target -= c.p
			if target < 0 {
				return c.id, nil
			}
		}
		return nucleus[len(nucleus)-1].id, nil
	}
	target := r * sum
	for i, p := range probs {
		target -= p
		if target < 0 {
			return i, nil
		}
	}
	// Rounding can leave target ≥ 0 after the last token; the last token with
	// non-zero probability is then the right answer.
	for i := len(probs) - 1; i > 0; i-- {
		if probs[i] > 0 {
			return i, nil
		}
	}
	return 0, nil
}

// nucleus returns the smallest set of most likely tokens whose probability
// sums to at least p·sum, most likely first (lower id first on ties). The
// slice is s's scratch, valid until the next call.
//
// Ordering the whole vocabulary every token would dominate the cost of a
// small model, so tokens below (1−p)·sum/(n−1) are dropped first: if such a
// token were in the nucleus, the mass of every token from it on — at most
// n−1 tokens, none larger than it — would be below (1−p)·sum, so the tokens
// before it would already reach p·sum. The argument needs a token before it,
// so when even the most likely token is dropped (p < 1/n), or rounding leaves
// the survivors short of p·sum, the whole vocabulary is taken instead. The
// survivors are then ordered only as far as the nucleus reaches: a heap of
// them (linear time) gives up the most likely one at a time, so a nucleus of
// k tokens among m survivors costs m + k·log m comparisons instead of a sort's
// m·log m. The tokens come out in the order a sort gives (the order is
// total: ids differ), so the sums, and the token drawn, are the same.
func (s *Sampler) nucleus(probs []float64, sum, p float64) []tokenProb {
	if cap(s.cands) < len(probs) {
		s.cands = make([]tokenProb, 0, len(probs))
	}
	want := p * sum
	cutoff := 0.0
	if len(probs) > 1 {
		cutoff = (1 - p) * sum / float64(len(probs)-1)
	}
	for _, threshold := range []float64{cutoff, math.Inf(-1)} {
		cands := s.cands[:0]
		for i, q := range probs {
			if q >= threshold {
				cands = append(cands, tokenProb{i, q})
			}
		}
		// Popped tokens go to the end of cands, the most likely last.
		heapify(cands)
		var cum float64
		for h := len(cands); h > 0; h-- {
			top := cands[0]
			cum += top.p
			cands[0], cands[h-1] = cands[h-1], top
			siftDown(cands[:h-1], 0)
			if cum >= want {
				nucleus := cands[h-1:]
				slices.Reverse(nucleus)
				return nucleus
			}
		}
	}
	// Even the full vocabulary fell short of p·sum by rounding: keep it all,
	// most likely first (the heap left it least likely first).
	all := s.cands[:len(probs)]
	slices.Reverse(all)
	return all
}

// before reports whether token a comes before b in the nucleus's order:
// more likely first, the lower id first on ties.
func (a tokenProb) before(b tokenProb) bool {
	return a.p > b.p || a.p == b.p && a.id < b.id
}

// heapify orders h as a heap whose root comes before every other token.
func heapify(h []tokenProb) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
}

// siftDown moves h[i] down the heap h to its place.
func siftDown(h []tokenProb, i int) {
	if i >= len(h) {
		return
	}
	x := h[i]
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if c+1 < len(h) && h[c+1].before(h[c]) {
			c++
		}
		if !h[c].before(x) {
			break
		}
		h[i] = h[c]
		i = c
	}
	h[i] = x
}

// argmaxLogits returns the index of the largest logit, the lowest on ties.
func argmaxLogits(logits []float32) (int, error) {
	if len(logits) == 0 {
		return 0, errors.New("infer: sampler: no logits")
	}
	best, _, ok := kernels.ArgMax(logits)
	if !ok {
		return 0, fmt.Errorf("infer: sampler: logit %d is NaN", best)
	}
	if math.IsInf(float64(logits[best]), 0) {
		return 0, fmt.Errorf("infer: sampler: largest logit (token %d) is %v", best, logits[best])
	}
	return best, nil
}
