package safetensors_test

import (
	"bytes"
	"fmt"
	"log"

	"github.com/golora/golora/internal/safetensors"
)

func Example() {
	t, err := safetensors.FromFloat32("lora_A", safetensors.BF16, []int{2, 2}, []float32{1, 0.5, -2, 3})
	if err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, []safetensors.Tensor{t}, map[string]string{"format": "pt"}); err != nil {
		log.Fatal(err)
	}
	f, err := safetensors.Parse(buf.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	got, _ := f.Tensor("lora_A")
	values, err := got.Float32s()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.DType, got.Shape, values, f.Metadata())
	// Output: BF16 [2 2] [1 0.5 -2 3] map[format:pt]
}
