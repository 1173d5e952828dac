// Command generate continues a prompt with the embedded stories260K model:
// the smallest program that loads a model and generates text. It links
// model and model/infer only, not the training graph and its autodiff engine
// (main_test.go checks that).
//
//	go run ./examples/generate "Once upon a time"
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/golora/golora/model"
	"github.com/golora/golora/model/infer"
)

func main() {
	prompt := "Once upon a time"
	if len(os.Args) > 1 {
		prompt = strings.Join(os.Args[1:], " ")
	}
	if err := run(context.Background(), os.Stdout, prompt, 100); err != nil {
		fmt.Fprintln(os.Stderr, "generate:", err)
		os.Exit(1)
	}
}

// run writes prompt and its greedy continuation of at most maxTokens tokens
// to w.
func run(ctx context.Context, w io.Writer, prompt string, maxTokens int) error {
	base, err := model.Default()
	if err != nil {
		return err
	}
	text, err := infer.Generate(ctx, base.Weights, base.Tokenizer, prompt, infer.GenerateOptions{MaxTokens: maxTokens})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s%s\n", prompt, text)
	return err
}
