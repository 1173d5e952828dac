package kernels

import "unsafe"

// prefetch issues PREFETCHT0 for lines cache lines from p on.
//
//go:noescape
func prefetch(p unsafe.Pointer, lines int)
