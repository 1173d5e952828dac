//go:build !openblas

package blas

import "gonum.org/v1/gonum/blas/gonum"

// The pure-Go default: gorgonia already uses this implementation, so nothing
// needs switching.
const name = "gonum"

var impl Full = gonum.Implementation{}

// gonum spreads large products over goroutines itself.
const singleThreaded = false
