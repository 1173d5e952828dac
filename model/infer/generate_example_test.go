package infer_test

import (
	"context"
	"fmt"
	"log"

	"github.com/golora/golora/model"
	"github.com/golora/golora/model/infer"
)

// Greedy generation with the embedded stories260K model, streamed token by
// token and stopped at the end of the first paragraph. The text is the one
// llama2.c documents for this model and prompt.
func ExampleGenerate() {
	cp, err := model.Default()
	if err != nil {
		log.Fatal(err)
	}
	prompt := "Once upon a time"
	fmt.Print(prompt)
	_, err = infer.Generate(context.Background(), cp.Weights, cp.Tokenizer, prompt, infer.GenerateOptions{
		MaxTokens: 200,
		Stop:      []string{"\n"},
		OnToken: func(id int, text string) error {
			fmt.Print(text)
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println()
	// Output: Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.
}
