package tokenizer_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/golora/golora/model/tokenizer"
)

// Encode a prompt with the llama2.c tokenizer of the stories260K model and
// decode it back; the model expects BOS first.
func Example() {
	tok, err := tokenizer.LoadLlama2C("testdata/tok512.bin", 512)
	if err != nil {
		log.Fatal(err)
	}
	ids := tok.Encode("Once upon a time")
	fmt.Println(ids)
	fmt.Printf("%q\n", tok.Decode(append([]int{tok.BOS()}, ids...)))
	// Output:
	// [403 407 261 378]
	// "Once upon a time"
}

// Print tokens as they are generated: characters split over several
// byte-fallback tokens appear once they are complete.
func ExampleStreamDecoder() {
	tok, err := tokenizer.LoadLlama2C("testdata/tok512.bin", 512)
	if err != nil {
		log.Fatal(err)
	}
	prompt := tok.Encode("Once upon")
	generated := tok.Encode("Once upon a time 😀")[len(prompt):]

	d := tokenizer.NewStreamDecoder(tok)
	d.Prime(prompt) // the caller has printed the prompt already
	var shown []string
	for _, id := range generated {
		shown = append(shown, d.Next(id))
	}
	shown = append(shown, d.Flush())
	fmt.Printf("%q\n", strings.Join(shown, "|"))
	// Output:
	// " a| time| ||||😀|"
}

// Build the tokenizer of a GGUF file whose tokenizer.ggml.model is "gpt2"
// from its metadata arrays (here a toy vocabulary in the GPT-2 byte
// alphabet, where "Ġ" stands for a space).
func ExampleNewByteLevelBPE() {
	tok, err := tokenizer.NewByteLevelBPE(tokenizer.ByteLevelBPEConfig{
		Tokens: []string{"<|begin_of_text|>", "H", "i", "Ġ", "!", "Hi", "Ġ!"},
		Types:  []int32{3, 1, 1, 1, 1, 1, 1}, // 3: control token
		Merges: []string{"H i", "Ġ !"},
		Pre:    "llama-bpe",
		BOS:    0, EOS: -1, AddBOS: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	ids := tok.Encode("<|begin_of_text|>Hi !")
	fmt.Println(ids, tok.BOS())
	fmt.Printf("%q\n", tok.Decode(ids))
	// Output:
	// [0 5 6] 0
	// "<|begin_of_text|>Hi !"
}
