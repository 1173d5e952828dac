package graph

import (
	"testing"

	"gorgonia.org/gorgonia"

	"github.com/golora/golora/internal/blas"
)

// TestGorgoniaUsesGoloraBLAS: gorgonia's products (LoRA's nodes) run on the
// same BLAS as golora's own kernels, in every build.
func TestGorgoniaUsesGoloraBLAS(t *testing.T) {
	if got, want := gorgonia.WhichBLAS(), blas.Implementation(); got != want {
		t.Fatalf("gorgonia uses %T, want %T (%s)", got, want, blas.Name())
	}
}
