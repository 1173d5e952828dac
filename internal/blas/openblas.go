//go:build openblas

package blas

// #cgo pkg-config: openblas
// void openblas_set_num_threads(int num_threads);
import "C"

import (
	"gonum.org/v1/netlib/blas/netlib"
	"gorgonia.org/gorgonia"
)

const name = "openblas"

var impl Full = netlib.Implementation{}

const singleThreaded = true

// The build tag is the single switch for both golora's kernels and gorgonia's
// own matrix products (LoRA adapters and anything else built from its
// operators).
func init() {
	C.openblas_set_num_threads(1)
	gorgonia.Use(impl)
}
