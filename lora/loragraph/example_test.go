package loragraph_test

import (
	"context"
	"fmt"
	"log"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/lora/loragraph"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/graph"
)

// Example puts a new adapter into a training graph of a tiny random model,
// runs one forward and backward pass, and lists the trainable tensors with
// the size of their gradients.
func Example() {
	base := model.RandomWeights(model.Config{
		Dim: 16, HiddenDim: 32, Layers: 1, Heads: 2, KVHeads: 2, HeadDim: 8,
		VocabSize: 20, MaxSeqLen: 8, NormEps: 1e-5, RopeTheta: 10000,
	}, 1)
	cfg := lora.DefaultConfig()
	cfg.R, cfg.Alpha = 2, 4
	cfg.TargetModules = lora.ModuleNames("q_proj", "v_proj")
	adapter, err := lora.New(base, cfg, 1)
	if err != nil {
		log.Fatal(err)
	}
	ga, err := loragraph.New(adapter)
	if err != nil {
		log.Fatal(err)
	}
	gr, err := graph.New(base, graph.Options{Batch: 1, SeqLen: 4, Adapter: ga})
	if err != nil {
		log.Fatal(err)
	}
	defer gr.Close()
	nodes, err := ga.Nodes()
	if err != nil {
		log.Fatal(err)
	}
	if _, err := gr.Differentiate(nodes...); err != nil {
		log.Fatal(err)
	}
	if err := gr.SetBatch([]int{1, 5, 7, 2}, []int{5, 7, 2, 9}); err != nil {
		log.Fatal(err)
	}
	if _, err := gr.ForwardBackward(context.Background()); err != nil {
		log.Fatal(err)
	}
	params, err := ga.Params()
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range params {
		g, err := p.Grad()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(p.Name, len(p.Value), len(g))
	}
	// Output:
	// base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight 32 32
	// base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight 32 32
	// base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight 32 32
	// base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight 32 32
}
