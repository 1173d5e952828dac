//go:build !amd64

package gemm

import "github.com/golora/golora/internal/cpu"

// asmKernels is empty off amd64: every level runs the pure-Go path.
var asmKernels [cpu.AVX512 + 1][]*kernel
