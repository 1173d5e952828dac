package model_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant/ggml"
)

// Load the embedded stories260K model and quantize its block linears to NF4
// in place, as QLoRA does with a frozen base.
func Example() {
	ck, err := model.Default()
	if err != nil {
		log.Fatal(err)
	}
	w := ck.Weights
	fmt.Printf("%s: dim %d, %d layers, %d heads (%d KV), vocab %d\n",
		ck.Path, w.Config.Dim, w.Config.Layers, w.Config.Heads, w.Config.KVHeads, w.Config.VocabSize)
	fmt.Println("prompt ids:", ck.Tokenizer.Encode("Once upon a time"))

	before := w.WeightBytes()
	err = w.Quantize(context.Background(), nf4.Quantizer(nf4.Options{}))
	if err != nil {
		log.Fatal(err)
	}
	after := w.WeightBytes()
	fmt.Printf("%d linears quantized; weights %d -> %d bytes\n", len(w.Linears()), before.Total(), after.Total())
	// Output:
	// embedded:stories260K: dim 64, 5 layers, 8 heads (4 KV), vocab 512
	// prompt ids: [403 407 261 378]
	// 35 linears quantized; weights 1040128 -> 250988 bytes
}

// Load picks the loader from the path: a Hugging Face directory, a llama2.c
// .bin (with its tokenizer given separately) or a GGUF file.
func ExampleLoad() {
	ck, err := model.Load(context.Background(), "testdata/stories260K.gguf", model.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ck.Format, ck.Weights.Config.MaxSeqLen, ck.Weights.Config.TiedOutput, ck.Tokenizer.VocabSize())

	_, err = model.Load(context.Background(), "stories260k/stories260K.bin", model.LoadOptions{})
	fmt.Println(err != nil)
	ck, err = model.Load(context.Background(), "stories260k/stories260K.bin", model.LoadOptions{TokenizerPath: "stories260k/tok512.bin"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ck.Format, ck.Weights.Config.MaxSeqLen)
	// Output:
	// gguf 2048 true 512
	// true
	// llama2c 512
}

// WriteGGUF writes a model llama.cpp runs; Load reads it back, with the
// block linears kept in the file's format.
func ExampleWriteGGUF() {
	ck, err := model.Default()
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "golora-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "stories260K.q8_0.gguf")
	if err := model.WriteGGUF(path, ck, ggml.Q8_0); err != nil {
		log.Fatal(err)
	}
	back, err := model.Load(context.Background(), path, model.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(back.Format, back.Weights.Layers[0].Q.Quantized.Format())
	_, err = back.ChatTemplate()
	fmt.Println(errors.Is(err, model.ErrNoChatTemplate))
	// Output:
	// gguf q8_0
	// true
}
