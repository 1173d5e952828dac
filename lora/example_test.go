package lora_test

import (
	"fmt"
	"log"
	"os"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
)

// Example creates an adapter on the attention projections of a one-block
// model, checks that a fresh adapter leaves the output unchanged, and saves
// and reloads it in PEFT's format.
func Example() {
	const dim = 8
	linear := func(name string) *model.Linear {
		w := make([]float32, dim*dim)
		for i := range w {
			w[i] = float32(i%7) / 10
		}
		return &model.Linear{Name: name, Out: dim, In: dim, Dense: w}
	}
	base := &model.Weights{
		Config: model.Config{Dim: dim, HiddenDim: 16, Layers: 1, Heads: 2, KVHeads: 2, HeadDim: 4, VocabSize: 10},
		Layers: []model.Layer{{
			Q: linear("model.layers.0.self_attn.q_proj"),
			V: linear("model.layers.0.self_attn.v_proj"),
		}},
	}

	cfg := lora.DefaultConfig()
	cfg.R, cfg.Alpha = 4, 8
	cfg.TargetModules = lora.ModuleNames("q_proj", "v_proj")
	adapter, err := lora.New(base, cfg, 1)
	if err != nil {
		log.Fatal(err)
	}
	q, _ := adapter.Pair("model.layers.0.self_attn.q_proj")
	fmt.Println("modules:", adapter.Modules())
	fmt.Println("A:", q.R, "x", q.In, " B:", q.Out, "x", q.R, " scaling:", q.Scaling())

	// B starts at zero, so the adapter adds nothing until it is trained.
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	y := make([]float32, dim)
	if err := adapter.AddDelta(base.Layers[0].Q, y, x, 1); err != nil {
		log.Fatal(err)
	}
	fmt.Println("delta of a new adapter:", y)

	dir, err := os.MkdirTemp("", "adapter")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := lora.Save(dir, adapter); err != nil {
		log.Fatal(err)
	}
	loaded, err := lora.LoadFor(dir, base)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("reloaded:", len(loaded.Modules()), "pairs,", loaded.NumParams(), "parameters")
	// Output:
	// modules: [model.layers.0.self_attn.q_proj model.layers.0.self_attn.v_proj]
	// A: 4 x 8  B: 8 x 4  scaling: 2
	// delta of a new adapter: [0 0 0 0 0 0 0 0]
	// reloaded: 2 pairs, 128 parameters
}
