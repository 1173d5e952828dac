package model_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
)

// Quantize the embedded model to NF4 and save it as a bitsandbytes 4-bit
// Hugging Face checkpoint with its tokenizer; Load reads it back 4-bit.
func ExampleWriteHF_nf4() {
	ck, err := model.Default()
	if err != nil {
		log.Fatal(err)
	}
	err = ck.Weights.Quantize(context.Background(), nf4.Quantizer(nf4.Options{}))
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "golora-nf4")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := ck.WriteTokenizer(dir); err != nil {
		log.Fatal(err)
	}
	// The dtype of the float tensors: "F32", "F16" or "BF16".
	if err := model.WriteHF(dir, ck.Weights, "F32"); err != nil {
		log.Fatal(err)
	}

	back, err := model.Load(context.Background(), dir, model.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	q := back.Weights.Layers[0].Q.Quantized
	fmt.Printf("q_proj: %s, %.3f bits/param\n", q.Format(), q.BitsPerParam())
	fmt.Println("prompt ids:", back.Tokenizer.Encode("Once upon a time"))
	// Output:
	// q_proj: nf4, 4.141 bits/param
	// prompt ids: [403 407 261 378]
}
