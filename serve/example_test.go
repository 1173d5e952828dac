package serve_test

import (
	"context"
	"fmt"
	"log"

	"github.com/golora/golora/model"
	"github.com/golora/golora/serve"
)

// Example runs a greedy completion of the embedded model through the
// engine (the text is infer.Generate's for the same prompt, which
// TestEngineMatchesGenerator checks). With a Store, Request.Adapter names the adapter of each request;
// serve.NewServer puts the OpenAI API in front of the engine.
func Example() {
	base, err := model.Default()
	if err != nil {
		log.Fatal(err)
	}
	m, err := serve.NewBatchedModel(base.Weights)
	if err != nil {
		log.Fatal(err)
	}
	engine, err := serve.NewEngine(m, nil, base.Tokenizer, serve.EngineOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Shutdown(context.Background())

	tok := base.Tokenizer
	prompt := append([]int{tok.BOS()}, tok.Encode("Once upon a time")...)
	stream, err := engine.Submit(context.Background(), serve.Request{Prompt: prompt, MaxTokens: 12})
	if err != nil {
		log.Fatal(err)
	}
	for chunk := range stream.C {
		_ = chunk.Text // streamed as it comes
	}
	res := stream.Result()
	fmt.Printf("%q\n%d prompt tokens, %d generated (%s)\n", res.Text, res.PromptTokens, res.CompletionTokens, res.Reason)
	// Output:
	// ", there was a little girl named Lily. She"
	// 5 prompt tokens, 12 generated (length)
}
