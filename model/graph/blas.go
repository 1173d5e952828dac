package graph

import (
	"gorgonia.org/gorgonia"

	"github.com/golora/golora/internal/blas"
)

// gorgonia's own matrix products (LoRA adapters and everything else built
// from its operators) run on the same BLAS as golora's kernels: golora's
// assembly Sgemm by default, OpenBLAS with -tags openblas. It is set here,
// not in internal/blas, so that only programs that build a training graph
// link gorgonia.
func init() { gorgonia.Use(blas.Implementation()) }
