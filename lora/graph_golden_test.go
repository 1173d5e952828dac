package lora

import (
	"context"
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golora/golora/model/graph"
)

// graphGolden is what one configuration of TestGraphAdapterGolden computed:
// the bits of the losses of two training runs and one evaluation run, and an
// FNV-1a hash of the bits of every accumulated gradient after each training
// run.
type graphGolden struct {
	loss     [2]uint32
	evalLoss uint32
	grads    [2]uint64
}

// TestGraphAdapterGolden pins the losses and gradients of small training
// runs bit for bit, so that a change in how the adapter's operators manage
// their buffers (not in what they compute) shows as a failure. The golden
// values were printed by this test (its log lines) at commit f0fb309, when
// every operator owned its output and work buffers for the graph's lifetime,
// before they came from the graph's arena.
func TestGraphAdapterGolden(t *testing.T) {
	for _, tc := range []struct {
		name    string
		nf4     bool
		dropout float64
		want    graphGolden
	}{
		{"dense", false, 0, graphGolden{loss: [2]uint32{0x408d75f0, 0x408d75f0}, evalLoss: 0x408d75f0, grads: [2]uint64{0x9d51def1adfb32fb, 0xa2a103b56a55ea21}}},
		{"nf4+dropout", true, 0.25, graphGolden{loss: [2]uint32{0x4092c236, 0x4081f029}, evalLoss: 0x408cb62b, grads: [2]uint64{0x8e346c60d2003fba, 0x84374502fe8c67c3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := graphTestBase(graphTestConfig, 41)
			if tc.nf4 {
				quantizeNF4(t, w)
			}
			cfg := gradCheckConfig()
			cfg.Dropout = tc.dropout
			a, ga := graphAdapterFor(t, w, cfg, 42)
			randomize(a, 43)
			const batch, seqLen = 2, 7
			gr, params := newTrainingGraph(t, w, ga, batch, seqLen)
			if ga.bufs == (graph.Buffers{}) {
				t.Fatal("graph.New did not hand the adapter its buffers")
			}
			tokens, targets := graphTestBatch(44, batch, seqLen, graphTestConfig.VocabSize)
			if err := gr.SetBatch(tokens, targets); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(45, 46))
			var got graphGolden
			// Two runs: the second reuses whatever buffers the first left
			// behind, with new masks, and its gradients add to the first's.
			for run := range 2 {
				ga.SampleDropout(rng)
				loss, err := gr.ForwardBackward(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got.loss[run] = math.Float32bits(loss)
				h := fnv.New64a()
				for _, p := range params {
					g, err := p.Grad()
					if err != nil {
						t.Fatal(err)
					}
					for _, v := range g {
						h.Write(binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)))
					}
				}
				got.grads[run] = h.Sum64()
			}
			ga.DisableDropout()
			loss, err := gr.Forward(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got.evalLoss = math.Float32bits(loss)
			t.Logf("graphGolden{loss: [2]uint32{%#x, %#x}, evalLoss: %#x, grads: [2]uint64{%#x, %#x}}",
				got.loss[0], got.loss[1], got.evalLoss, got.grads[0], got.grads[1])
			if got != tc.want {
				t.Errorf("losses %v, %v (eval %v) and gradient hashes %#x, want %v, %v (eval %v) and %#x",
					math.Float32frombits(got.loss[0]), math.Float32frombits(got.loss[1]), math.Float32frombits(got.evalLoss), got.grads,
					math.Float32frombits(tc.want.loss[0]), math.Float32frombits(tc.want.loss[1]), math.Float32frombits(tc.want.evalLoss), tc.want.grads)
			}
		})
	}
}
