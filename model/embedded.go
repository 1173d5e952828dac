package model

import (
	_ "embed" // for the go:embed model files
	"fmt"

	"github.com/golora/golora/model/tokenizer"
)

// The stories260K model of karpathy/tinyllamas (llama2.c, MIT licence; see
// stories260k/README.md): about 1 MB in all, small enough to ship so that
// examples and tests run without downloading anything.
var (
	//go:embed stories260k/stories260K.bin
	stories260KBin []byte
	//go:embed stories260k/tok512.bin
	tok512Bin []byte
)

// DefaultPath is the Base.Path of the embedded model.
const DefaultPath = "embedded:stories260K"

// Default returns the embedded model: stories260K, a 260K-parameter LLaMA-2
// architecture model trained on TinyStories (dim 64, 5 layers, 8 heads, 4 KV
// heads, 512-token vocabulary, 512 positions), with its llama2.c tokenizer.
// Each call parses a fresh copy, so callers may quantize or modify it.
func Default() (*Base, error) {
	w, err := parseLlama2C(stories260KBin)
	if err != nil {
		return nil, fmt.Errorf("model: embedded stories260K.bin: %w", err)
	}
	tok, err := tokenizer.ParseLlama2C(tok512Bin, w.Config.VocabSize)
	if err != nil {
		return nil, fmt.Errorf("model: embedded tok512.bin: %w", err)
	}
	return &Base{Weights: w, Tokenizer: tok, Format: FormatEmbedded, Path: DefaultPath}, nil
}
