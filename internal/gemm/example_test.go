package gemm_test

import (
	"fmt"

	"github.com/golora/golora/internal/gemm"
)

// Multiply a 2×3 matrix by the transpose of a 2×3 matrix.
func ExampleSgemm() {
	a := []float32{1, 2, 3, 4, 5, 6}
	b := []float32{1, 0, 1, 0, 1, 0}
	c := make([]float32, 4)
	gemm.Sgemm(false, true, 2, 2, 3, 1, a, 3, b, 3, 0, c, 2)
	fmt.Println(c)
	// Output: [4 2 10 5]
}

// identity is a Source for an n×n identity matrix, written block by block
// on demand rather than stored.
type identity struct{}

func (identity) Block(dst []float32, ld, r0, r1, c0, c1 int) {
	for r := r0; r < r1; r++ {
		row := dst[(r-r0)*ld : (r-r0)*ld+c1-c0]
		clear(row)
		if r >= c0 && r < c1 {
			row[r-c0] = 1
		}
	}
}

// Multiply a 2×3 matrix by a 3×3 identity that a Source produces.
func ExampleSgemmSource() {
	a := []float32{1, 2, 3, 4, 5, 6}
	c := make([]float32, 6)
	gemm.SgemmSource(false, false, 2, 3, 3, 1, a, 3, identity{}, 0, c, 3)
	fmt.Println(c)
	// Output: [1 2 3 4 5 6]
}
