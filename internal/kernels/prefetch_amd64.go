package kernels

// prefetch issues PREFETCHT0 for lines cache lines from p on.
//
//go:noescape
func prefetch(p *float32, lines int)
