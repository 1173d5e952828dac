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

// dotQ8_0AVX2 and dotQ4_0AVX2 set y[r] for r < rows to the dot product of
// x (blocks blocks' worth of values) with the row of W at w + r·rowBytes,
// in the Go code's order (order.go), so the bits are dotQ8_0's and
// dotQ4_0's. They need F16C for the scales.
//
//go:noescape
func dotQ8_0AVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)

//go:noescape
func dotQ4_0AVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)

// dotQ8_0AVX512 and dotQ4_0AVX512 are dotQ8_0AVX2 and dotQ4_0AVX2 on rows
// pairs of rows, each row of a pair in one half of a ZMM register, with the
// same bits: row i (w + i·rowStep, output y[i]) with the row rowBytes
// further (output yStep bytes further).
//
//go:noescape
func dotQ8_0AVX512(y *float32, w *byte, rows, rowBytes int, x *float32, blocks, rowStep, yStep int)

//go:noescape
func dotQ4_0AVX512(y *float32, w *byte, rows, rowBytes int, x *float32, blocks, rowStep, yStep int)

// dotQ4_1AVX2, dotQ5_0AVX2 and dotQ5_1AVX2 are the same for Q4_1, Q5_0 and
// Q5_1, with dotQ4_1's, dotQ5_0's and dotQ5_1's bits.
//
//go:noescape
func dotQ4_1AVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)

//go:noescape
func dotQ5_0AVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)

//go:noescape
func dotQ5_1AVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)

// dotQ2_KAVX2 … dotQ6_KAVX2 are the same for Q2_K … Q6_K (blocks of 256
// elements), with dotQ2_K's … dotQ6_K's bits.
//
//go:noescape
func dotQ2_KAVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)

//go:noescape
func dotQ3_KAVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)

//go:noescape
func dotQ4_KAVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)

//go:noescape
func dotQ5_KAVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)

//go:noescape
func dotQ6_KAVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)

// dotRows sets y[r] to the dot product of x with row r of the rows of W in
// w (len(y) rows of equal length), with the vector kernels where the CPU
// (and GOLORA_KERNELS) allows it.
func dotRows(t Type, f *format, y []float32, w []byte, x []float32) {
	dotRowsAt(cpu.Best(), t, f, y, w, x)
}

// vectorDot reports whether dotRows runs the vector kernels.
func vectorDot() bool { return vectorDotAt(cpu.Best()) }

func vectorDotAt(l cpu.Level) bool { return l >= cpu.AVX2 && cpu.HasF16C() }

// paired reports whether the machine's level has the AVX-512 kernels of t,
// which dotRowPairs runs: two rows at a time, one in each half of a ZMM
// register.
func paired(t Type) bool {
	return cpu.Best() >= cpu.AVX512 && cpu.HasF16C() && (t == Q8_0 || t == Q4_0)
}

// dotRowPairs sets y[i] and y[i+half] for i in [0, k) to the rows i and
// i+half of w (rows of rowBytes) times x, where paired(t). The caller
// bounds k (fusedRowsChunk): the assembly is not preemptible.
func dotRowPairs(t Type, f *format, y []float32, w []byte, x []float32, k, half int) {
	blocks := len(x) / f.blockElems
	rowBytes := blocks * f.blockBytes
	if k == 0 || blocks == 0 {
		return
	}
	_, _ = y[half+k-1], w[(half+k)*rowBytes-1]
	if t == Q8_0 {
		dotQ8_0AVX512(&y[0], &w[0], k, half*rowBytes, &x[0], blocks, rowBytes, 4*half)
	} else {
		dotQ4_0AVX512(&y[0], &w[0], k, half*rowBytes, &x[0], blocks, rowBytes, 4*half)
	}
}

// dotRowsAt is dotRows at kernel level l, one row at a time (the two-row
// AVX-512 kernels take their pairs through dotRowPairs). A caller bounds
// the rows of one call (fusedRowsChunk): the assembly is not preemptible.
func dotRowsAt(l cpu.Level, t Type, f *format, y []float32, w []byte, x []float32) {
	rows, blocks := len(y), len(x)/f.blockElems
	if rows == 0 || blocks == 0 || !vectorDotAt(l) {
		dotRowsGo(f, y, w, x)
		return
	}
	rowBytes := blocks * f.blockBytes
	_, _ = w[rows*rowBytes-1], x[blocks*f.blockElems-1]
	switch t {
	case Q8_0:
		dotQ8_0AVX2(&y[0], &w[0], rows, rowBytes, &x[0], blocks)
	case Q4_0:
		dotQ4_0AVX2(&y[0], &w[0], rows, rowBytes, &x[0], blocks)
	case Q4_1:
		dotQ4_1AVX2(&y[0], &w[0], rows, rowBytes, &x[0], blocks)
	case Q5_0:
		dotQ5_0AVX2(&y[0], &w[0], rows, rowBytes, &x[0], blocks)
	case Q5_1:
		dotQ5_1AVX2(&y[0], &w[0], rows, rowBytes, &x[0], blocks)
	case Q2_K:
		dotQ2_KAVX2(&y[0], &w[0], rows, rowBytes, &x[0], blocks)
	case Q3_K:
		dotQ3_KAVX2(&y[0], &w[0], rows, rowBytes, &x[0], blocks)
	case Q4_K:
		dotQ4_KAVX2(&y[0], &w[0], rows, rowBytes, &x[0], blocks)
	case Q5_K:
		dotQ5_KAVX2(&y[0], &w[0], rows, rowBytes, &x[0], blocks)
	case Q6_K:
		dotQ6_KAVX2(&y[0], &w[0], rows, rowBytes, &x[0], blocks)
	}
}
