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

func ExampleArena() {
	// The matrices of one cached adapter, outside the Go heap.
	a, err := hugemem.NewArena(hugemem.Footprint[float32](8*288) + hugemem.Footprint[uint16](8*768))
	if err != nil {
		fmt.Println(err)
		return
	}
	m := hugemem.Alloc[float32](a, 8*288)
	h := hugemem.Alloc[uint16](a, 8*768)
	m[0], h[0] = 1.5, 0x3c00
	fmt.Println(len(m), m[0], len(h), h[0], a.Freed())
	a.Free() // m and h must not be used from here on
	fmt.Println(a.Freed())
	// Output:
	// 2304 1.5 6144 15360 false
	// true
}
