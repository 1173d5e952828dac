package graph_test

import (
	"context"
	"fmt"
	"log"

	"github.com/golora/golora/model"
	"github.com/golora/golora/model/graph"
)

// Build the training graph of the embedded stories260K model, differentiate
// the loss with respect to the embedded input (an adapter's parameters in
// LoRA training), and run one batch forward and backward.
func ExampleNew() {
	ck, err := model.Default()
	if err != nil {
		log.Fatal(err)
	}
	ids := append([]int{ck.Tokenizer.BOS()}, ck.Tokenizer.Encode("Once upon a time, there was a little girl named Lily.")...)
	seqLen := len(ids) - 1
	g, err := graph.New(ck.Weights, graph.Options{Batch: 1, SeqLen: seqLen})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Differentiate(g.Input); err != nil {
		log.Fatal(err)
	}
	// Next-token prediction: each position's target is the following token.
	if err := g.SetBatch(ids[:seqLen], ids[1:]); err != nil {
		log.Fatal(err)
	}
	loss, err := g.ForwardBackward(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	grad, err := g.Input.Grad()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d tokens, logits %v, input gradient %v\n", seqLen, g.Logits.Shape(), grad.Shape())
	// The sentence is how the model itself continues "Once upon a time"
	// (llama2.c's documented greedy output), so it predicts it well.
	fmt.Println("mean loss below 0.5 nats:", loss < 0.5)
	// Output:
	// 15 tokens, logits (15, 512), input gradient (15, 64)
	// mean loss below 0.5 nats: true
}
