package graph

import (
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
)

// bufferedTestAdapter is graphTestAdapter recording the Buffers New hands
// it, and whether it had them before its first Delta.
type bufferedTestAdapter struct {
	graphTestAdapter
	bufs        Buffers
	calls       int
	beforeDelta bool
}

func (a *bufferedTestAdapter) UseBuffers(b Buffers) {
	a.bufs = b
	a.calls++
	a.beforeDelta = len(a.params) == 0
}

// TestBuffers checks that New hands a BufferedAdapter the graph's arena once,
// before asking for terms, and that a released buffer serves the next
// request of its size while one still in use does not.
func TestBuffers(t *testing.T) {
	w := graphSynthetic(graphGQAConfig, 7, func(v float32) float32 { return v })
	ad := &bufferedTestAdapter{graphTestAdapter: graphTestAdapter{params: map[string]*gorgonia.Node{}, rng: rand.New(rand.NewPCG(8, 9))}}
	gr, err := New(w, Options{Batch: 1, SeqLen: 4, Adapter: ad})
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	if ad.calls != 1 || !ad.beforeDelta || ad.bufs.arena != gr.arena {
		t.Fatalf("UseBuffers called %d times, before Delta %v, with the graph's arena %v; want once, before, with it",
			ad.calls, ad.beforeDelta, ad.bufs.arena == gr.arena)
	}

	b := ad.bufs
	kept, scratch := b.Floats(100), b.Floats(100)
	b.Release(scratch)
	again := b.Floats(100)
	if &again[0] != &scratch[0] {
		t.Error("a released buffer did not serve the next request of its size")
	}
	if &again[0] == &kept[0] {
		t.Error("a buffer still in use was handed out again")
	}
	b.Release(nil) // nothing to give back: no panic

	var zero Buffers
	if f := zero.Floats(3); len(f) != 3 {
		t.Errorf("zero Buffers gave %d values, want 3", len(f))
	}
	zero.Release(make([]float32, 3))
}
