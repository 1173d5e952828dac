package loragraph

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golora/golora/model/graph"
	"gorgonia.org/gorgonia"

	"github.com/golora/golora/model"
)

// unbufferedAdapter hides Adapter's UseBuffers from graph.New, so the
// adapter's operators keep the zero graph.Buffers: every output and scratch
// buffer is a fresh allocation, never memory another operator used.
type unbufferedAdapter struct{ ga *Adapter }

func (u unbufferedAdapter) Delta(g *gorgonia.ExprGraph, lin *model.Linear, x *gorgonia.Node) (*gorgonia.Node, error) {
	return u.ga.Delta(g, lin, x)
}

// graphRun is what one training configuration computed: the bits of the
// losses of two training runs and one evaluation run, and every accumulated
// gradient after each training run.
type graphRun struct {
	loss     [2]uint32
	evalLoss uint32
	grads    [2][]uint32
}

// TestGraphAdapterArenaBuffers: the adapter's operators draw their outputs
// and scratch from the graph's arena, where buffers come back with what an
// earlier operator left in them. The losses and gradients must be bit for
// bit those of the same runs with fresh buffers everywhere, whatever the
// kernel level or BLAS (both runs use the same), over two runs in which the
// second reuses what the first left behind, with new dropout masks.
func TestGraphAdapterArenaBuffers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		nf4     bool
		dropout float64
	}{
		{"dense", false, 0},
		{"nf4+dropout", true, 0.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			arena := graphAdapterRuns(t, tc.nf4, tc.dropout, true)
			fresh := graphAdapterRuns(t, tc.nf4, tc.dropout, false)
			if arena.loss != fresh.loss || arena.evalLoss != fresh.evalLoss {
				t.Errorf("losses %#x (eval %#x) with the arena, %#x (eval %#x) with fresh buffers", arena.loss, arena.evalLoss, fresh.loss, fresh.evalLoss)
			}
			for run := range 2 {
				if len(arena.grads[run]) != len(fresh.grads[run]) {
					t.Fatalf("run %d: %d gradient values with the arena, %d fresh", run, len(arena.grads[run]), len(fresh.grads[run]))
				}
				for i := range arena.grads[run] {
					if arena.grads[run][i] != fresh.grads[run][i] {
						t.Fatalf("run %d: gradient value %d is %v with the arena, %v with fresh buffers", run, i,
							math.Float32frombits(arena.grads[run][i]), math.Float32frombits(fresh.grads[run][i]))
					}
				}
			}
		})
	}
}

// graphAdapterRuns trains a small fixed configuration twice and evaluates it
// once, the adapter's operators drawing from the graph's arena or not.
func graphAdapterRuns(t *testing.T, nf4 bool, dropout float64, useArena bool) graphRun {
	t.Helper()
	w, _, ga := gradCheckAdapter(t, 41, nf4, dropout)
	const batch, seqLen = 2, 7
	var adapter graph.Adapter = ga
	if !useArena {
		adapter = unbufferedAdapter{ga}
	}
	gr, params := newTrainingGraphVia(t, w, ga, adapter, batch, seqLen)
	if got := ga.bufs != (graph.Buffers{}); got != useArena {
		t.Fatalf("adapter has the graph's buffers: %v, want %v", got, useArena)
	}
	tokens, targets := graphTestBatch(44, batch, seqLen, graphTestConfig.VocabSize)
	if err := gr.SetBatch(tokens, targets); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(45, 46))
	var got graphRun
	for run := range 2 {
		ga.SampleDropout(rng)
		loss, err := gr.ForwardBackward(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got.loss[run] = math.Float32bits(loss)
		for _, p := range params {
			g, err := p.Grad()
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range g {
				got.grads[run] = append(got.grads[run], math.Float32bits(v))
			}
		}
	}
	ga.DisableDropout()
	loss, err := gr.Forward(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got.evalLoss = math.Float32bits(loss)
	return got
}
