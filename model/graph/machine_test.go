package graph

import (
	"context"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
)

// arenaBytes is what the arena has handed out and holds, in bytes.
func arenaBytes(a *graphArena) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, p := range a.used {
		n += 4 * len(*p)
	}
	for _, l := range a.free {
		for _, p := range l {
			n += 4 * len(*p)
		}
	}
	return n
}

// TestMachineMatchesTapeMachine runs a training step of a graph with an
// adapter on every linear layer on the Graph's machine and on gorgonia's
// TapeMachine, which keeps every value: the loss and every gradient must be
// the same to the bit (the same operators run in the same order; only
// where their outputs live differs). It also checks that the machine's
// reuse of buffers keeps the arena well below what the run hands out.
func TestMachineMatchesTapeMachine(t *testing.T) {
	w := graphSynthetic(graphGQAConfig, 5, func(v float32) float32 { return v })
	graphQuantizeLinear(t, w.Layers[0].Up)
	ad := &graphTestAdapter{params: map[string]*gorgonia.Node{}, rng: rand.New(rand.NewPCG(4, 5))}
	const batch, seqLen = 2, 9
	gr, err := New(w, Options{Batch: batch, SeqLen: seqLen, Adapter: ad})
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	wrt := gorgonia.Nodes{gr.Input}
	for _, lin := range w.Linears() {
		wrt = append(wrt, ad.params[lin.Name])
	}
	grads, err := gr.Differentiate(wrt...)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(6, 6))
	tokens := graphRandomTokens(rng, batch*seqLen, graphGQAConfig.VocabSize)
	targets := graphTargets(tokens, seqLen)
	targets[4] = IgnoreTarget
	if err := gr.SetBatch(tokens, targets); err != nil {
		t.Fatal(err)
	}
	loss, err := gr.ForwardBackward(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := make([][]float32, len(wrt))
	for i, n := range wrt {
		g, err := n.Grad()
		if err != nil {
			t.Fatal(err)
		}
		got[i] = append([]float32(nil), g.Data().([]float32)...)
	}
	held := arenaBytes(gr.arena)
	commuting := 0
	for _, st := range gr.train.steps {
		if st.commutes {
			commuting++
		}
	}
	if commuting == 0 {
		t.Error("no step of the plan was recognized as an addition")
	}

	// The same step on the TapeMachine, with an arena that never takes a
	// buffer back: every operator output is a buffer of its own.
	gr.arena.reset()
	tape := gorgonia.NewTapeMachine(gr.g.SubgraphRoots(append(gorgonia.Nodes{gr.Loss}, grads...)...))
	defer tape.Close()
	if err := tape.RunAll(); err != nil {
		t.Fatal(err)
	}
	tapeLoss, err := opScalar(gr.Loss.Value(), crossEntropyOp{}, "loss")
	if err != nil {
		t.Fatal(err)
	}
	if tapeLoss != loss {
		t.Errorf("loss %v, TapeMachine %v", loss, tapeLoss)
	}
	for i, gn := range grads {
		want := gn.Value().Data().([]float32)
		for j := range want {
			if got[i][j] != want[j] {
				t.Fatalf("gradient of %s [%d] = %v, TapeMachine %v", wrt[i].Name(), j, got[i][j], want[j])
			}
		}
	}
	all := arenaBytes(gr.arena)
	t.Logf("arena after a step: %d KiB with reuse, %d KiB without", held>>10, all>>10)
	if held >= all*3/4 {
		t.Errorf("the machine's arena holds %d bytes, the TapeMachine's run %d: expected reuse", held, all)
	}
}
