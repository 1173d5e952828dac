//go:build openblas

package blas

// #cgo pkg-config: openblas
// void openblas_set_num_threads(int num_threads);
import "C"

import "gonum.org/v1/netlib/blas/netlib"

const name = "openblas"

var impl Full = netlib.Implementation{}

const singleThreaded = true

func init() { C.openblas_set_num_threads(1) }
