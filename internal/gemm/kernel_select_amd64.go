package gemm

import "github.com/golora/golora/internal/cpu"

// asmKernels are the assembly code paths, by the level they need: the
// square-ish tile first, then the narrow ones for products with few columns
// and, for AVX-512, the short, wide one. The 8×48
// tile's cost is below the 14×32's: it broadcasts each element of Ã into a
// register once for three multiply-adds, where the 14×32 tile loads it for
// each of two, and in BenchmarkSgemm it ran the block linears' products
// (512×768×288 and the like) 5–15% faster on the same packed panels.
// The 8×48 tile and the AVX2 tiles have strided kernels, which read small
// products in place (see direct); the AVX2 tiles keep their packed kernels
// for the rest.
var asmKernels = [...][]*kernel{
	cpu.AVX2: {
		newKernel(kernel{level: cpu.AVX2, mr: 6, nr: 16, micro: kernel6x16AVX2, strided: kernel6x16StridedAVX2, kc: 256, mc: 1008, nc: 192, cost: 1}),
		newKernel(kernel{level: cpu.AVX2, mr: 12, nr: 8, micro: kernel12x8AVX2, strided: kernel12x8StridedAVX2, kc: 256, mc: 1008, nc: 192, cost: 1.15}),
	},
	cpu.AVX512: {
		newKernel(kernel{level: cpu.AVX512, mr: 14, nr: 32, micro: kernel14x32AVX512, kc: 384, mc: 1008, nc: 384, cost: 1}),
		newKernel(kernel{level: cpu.AVX512, mr: 28, nr: 16, micro: kernel28x16AVX512, kc: 256, mc: 1008, nc: 384, cost: 1.1}),
		newKernel(kernel{level: cpu.AVX512, mr: 28, nr: 8, micro: kernel28x8AVX512, kc: 256, mc: 1008, nc: 384, cost: 1.3}),
		newKernel(kernel{level: cpu.AVX512, mr: 8, nr: 48, micro: kernel8x48AVX512, strided: kernel8x48StridedAVX512, kc: 384, mc: 1008, nc: 384, cost: 0.9}),
	},
}

// kernel8x48AVX512 is the strided 8×48 kernel on packed panels.
func kernel8x48AVX512(k int, a, b, c *float32, ldc int, alpha, beta float32) {
	kernel8x48StridedAVX512(k, a, b, c, ldc, alpha, beta, 1, 8, 48)
}
