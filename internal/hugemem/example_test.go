package hugemem_test

import (
	"fmt"

	"github.com/golora/golora/internal/hugemem"
)

func ExampleMake() {
	// An embedding matrix the loader is about to fill.
	emb := hugemem.Make[float32](4096 * 2048)
	fmt.Println(len(emb), emb[0])
	// Output: 8388608 0
}
