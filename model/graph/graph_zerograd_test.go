package graph

import "testing"

// ZeroGrad before any backward pass has bound gradient buffers is a no-op,
// so a trainer may clear gradients unconditionally at the start of a step.
func TestZeroGradBeforeFirstRun(t *testing.T) {
	w := graphSynthetic(graphGQAConfig, 1, func(v float32) float32 { return v })
	gr, err := New(w, Options{Batch: 1, SeqLen: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gr.Differentiate(gr.Input); err != nil {
		t.Fatal(err)
	}
	if err := gr.ZeroGrad(); err != nil {
		t.Fatal(err)
	}
}
