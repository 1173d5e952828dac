package gguf_test

import (
	"bytes"
	"fmt"
	"log"

	"github.com/golora/golora/internal/gguf"
)

func Example() {
	var b gguf.Builder
	if err := b.AddKV("general.architecture", "llama"); err != nil {
		log.Fatal(err)
	}
	if err := b.AddKV("llama.block_count", uint32(2)); err != nil {
		log.Fatal(err)
	}
	if err := b.AddFloat32("output_norm.weight", []int{3}, []float32{1, 0.5, 2}); err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		log.Fatal(err)
	}

	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	arch, _ := f.String("general.architecture")
	blocks, _ := f.Int("llama.block_count")
	norm, _ := f.TensorFloat32("output_norm.weight")
	_, err = f.Int("llama.embedding_length")
	fmt.Println(arch, blocks, norm)
	fmt.Println(err)
	// Output:
	// llama 2 [1 0.5 2]
	// gguf: metadata key "llama.embedding_length": key not found
}
