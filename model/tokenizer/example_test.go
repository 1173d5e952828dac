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
