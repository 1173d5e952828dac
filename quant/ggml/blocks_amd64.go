package ggml

import "github.com/golora/golora/internal/cpu"

// dequantQ8_0AVX512 writes the 32·blocks values of the Q8_0 blocks at row:
// VPMOVSXBD widens 16 codes at a time, VCVTPH2PS converts the fp16 scale
// exactly, and one VMULPS rounds each product as the Go code does, so the
// bits are the same. A Q8_0 load converted codes one at a time (a quarter
// of the time of a Q8_0 → NF4 load of the 1B shape).
//
//go:noescape
func dequantQ8_0AVX512(dst *float32, row *byte, blocks int)

// dequantQ8_0 dequantizes the whole blocks of row into dst, with AVX-512
// where the CPU (and GOLORA_KERNELS) allows it.
func dequantQ8_0(dst []float32, row []byte) { dequantQ8_0At(cpu.Best(), dst, row) }

// dequantQ8_0At is dequantQ8_0 at kernel level l. A call covers one row of
// a tensor (a few hundred blocks), short enough for the assembly, which is
// not preemptible.
func dequantQ8_0At(l cpu.Level, dst []float32, row []byte) {
	blocks := len(dst) / 32
	if l >= cpu.AVX512 && cpu.HasF16C() && blocks > 0 {
		_, _ = row[blocks*34-1], dst[blocks*32-1]
		dequantQ8_0AVX512(&dst[0], &row[0], blocks)
		return
	}
	dequantQ8_0Go(dst, row)
}
