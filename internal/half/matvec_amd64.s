// Matrix-vector kernels with 16-bit weights (matvec_amd64.go declares
// them): four rows of W against x, 16 elements per step, each row's
// products (rounded, then added: no FMA) in 16 float32 lanes, then folded
// in halves as dotRow folds them.

#include "textflag.h"

// ROWS4 loads the four row pointers and x, zeroes the accumulators.
#define ROWS4 \
	MOVQ w+0(FP), SI       \
	MOVQ ld+8(FP), BX      \
	SHLQ $1, BX            \
	MOVQ x+16(FP), DX      \
	MOVQ n+24(FP), CX      \
	MOVQ y+32(FP), DI      \
	LEAQ (SI)(BX*1), R8    \
	LEAQ (R8)(BX*1), R9    \
	LEAQ (R9)(BX*1), R10   \
	XORQ AX, AX

// FOLD8 adds the eight lanes of Y in halves into X's low lane, stored at
// off(DI). Clobbers X12.
#define FOLD8(y, x, off) \
	VEXTRACTF128 $1, y, X12 \
	VADDPS       X12, x, x  \
	VMOVHLPS     x, x, X12  \
	VADDPS       X12, x, x  \
	VMOVSHDUP    x, X12     \
	VADDSS       X12, x, x  \
	VMOVSS       x, off(DI)

// FOLD16 adds the sixteen lanes of Z as FOLD8 does.
#define FOLD16(z, y, x, off) \
	VEXTRACTF32X8 $1, z, Y12 \
	VADDPS        Y12, y, y  \
	FOLD8(y, x, off)

// ACC512 adds the widened 16 weights in Z (from row base r) times x (Z8)
// to the accumulator acc.
#define ACC512(z, acc) \
	VMULPS Z8, z, z \
	VADDPS z, acc, acc

#define BF16512(r, z) \
	VPMOVZXWD (r)(AX*2), z \
	VPSLLD    $16, z, z

#define F16512(r, z) \
	VCVTPH2PS (r)(AX*2), z

// func matVec4BF16AVX512(w *uint16, ld int, x *float32, n int, y *float32)
TEXT ·matVec4BF16AVX512(SB), NOSPLIT, $0-40
	ROWS4
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3

	// Two steps of 16 an iteration, a whole cache line of each row, into
	// the same accumulators (the order of the sums is unchanged); a last
	// single step when n is an odd multiple of 16.
	LEAQ -16(CX), R11

bf512loop2:
	CMPQ AX, R11
	JGE  bf512last
	VMOVUPS (DX)(AX*4), Z8
	VMOVUPS 64(DX)(AX*4), Z9
	BF16512(SI, Z4)
	BF16512(R8, Z5)
	BF16512(R9, Z6)
	BF16512(R10, Z7)
	VPMOVZXWD 32(SI)(AX*2), Z10
	VPMOVZXWD 32(R8)(AX*2), Z11
	VPMOVZXWD 32(R9)(AX*2), Z13
	VPMOVZXWD 32(R10)(AX*2), Z14
	ACC512(Z4, Z0)
	ACC512(Z5, Z1)
	ACC512(Z6, Z2)
	ACC512(Z7, Z3)
	VPSLLD $16, Z10, Z10
	VPSLLD $16, Z11, Z11
	VPSLLD $16, Z13, Z13
	VPSLLD $16, Z14, Z14
	VMULPS Z9, Z10, Z10
	VMULPS Z9, Z11, Z11
	VMULPS Z9, Z13, Z13
	VMULPS Z9, Z14, Z14
	VADDPS Z10, Z0, Z0
	VADDPS Z11, Z1, Z1
	VADDPS Z13, Z2, Z2
	VADDPS Z14, Z3, Z3
	ADDQ $32, AX
	JMP  bf512loop2

bf512last:
	CMPQ AX, CX
	JGE  bf512done
	VMOVUPS (DX)(AX*4), Z8
	BF16512(SI, Z4)
	BF16512(R8, Z5)
	BF16512(R9, Z6)
	BF16512(R10, Z7)
	ACC512(Z4, Z0)
	ACC512(Z5, Z1)
	ACC512(Z6, Z2)
	ACC512(Z7, Z3)

bf512done:

	FOLD16(Z0, Y0, X0, 0)
	FOLD16(Z1, Y1, X1, 4)
	FOLD16(Z2, Y2, X2, 8)
	FOLD16(Z3, Y3, X3, 12)
	VZEROUPPER
	RET

// func matVec4F16AVX512(w *uint16, ld int, x *float32, n int, y *float32)
TEXT ·matVec4F16AVX512(SB), NOSPLIT, $0-40
	ROWS4
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3

	// Two steps an iteration, as matVec4BF16AVX512.
	LEAQ -16(CX), R11

f512loop2:
	CMPQ AX, R11
	JGE  f512last
	VMOVUPS (DX)(AX*4), Z8
	VMOVUPS 64(DX)(AX*4), Z9
	F16512(SI, Z4)
	F16512(R8, Z5)
	F16512(R9, Z6)
	F16512(R10, Z7)
	VCVTPH2PS 32(SI)(AX*2), Z10
	VCVTPH2PS 32(R8)(AX*2), Z11
	VCVTPH2PS 32(R9)(AX*2), Z13
	VCVTPH2PS 32(R10)(AX*2), Z14
	ACC512(Z4, Z0)
	ACC512(Z5, Z1)
	ACC512(Z6, Z2)
	ACC512(Z7, Z3)
	VMULPS Z9, Z10, Z10
	VMULPS Z9, Z11, Z11
	VMULPS Z9, Z13, Z13
	VMULPS Z9, Z14, Z14
	VADDPS Z10, Z0, Z0
	VADDPS Z11, Z1, Z1
	VADDPS Z13, Z2, Z2
	VADDPS Z14, Z3, Z3
	ADDQ $32, AX
	JMP  f512loop2

f512last:
	CMPQ AX, CX
	JGE  f512done
	VMOVUPS (DX)(AX*4), Z8
	F16512(SI, Z4)
	F16512(R8, Z5)
	F16512(R9, Z6)
	F16512(R10, Z7)
	ACC512(Z4, Z0)
	ACC512(Z5, Z1)
	ACC512(Z6, Z2)
	ACC512(Z7, Z3)

f512done:

	FOLD16(Z0, Y0, X0, 0)
	FOLD16(Z1, Y1, X1, 4)
	FOLD16(Z2, Y2, X2, 8)
	FOLD16(Z3, Y3, X3, 12)
	VZEROUPPER
	RET

// With AVX2 a row's 16 lanes are two registers: lo (lanes 0–7) and hi
// (8–15), against x's Y8 and Y9. ACC256 multiplies and adds one half.
#define ACC256(y, xr, acc) \
	VMULPS xr, y, y \
	VADDPS y, acc, acc

#define BF16256(r, lo, hi) \
	VPMOVZXWD (r)(AX*2), lo   \
	VPMOVZXWD 16(r)(AX*2), hi \
	VPSLLD    $16, lo, lo     \
	VPSLLD    $16, hi, hi

#define F16256(r, lo, hi) \
	VCVTPH2PS (r)(AX*2), lo \
	VCVTPH2PS 16(r)(AX*2), hi

// ROW256 accumulates one row: widen (a BF16256 or F16256 row), then both
// halves.
#define ROW256(lo, hi, acclo, acchi) \
	ACC256(lo, Y8, acclo) \
	ACC256(hi, Y9, acchi)

// FOLDS256 folds the four rows' lo and hi accumulators (lane i plus lane
// i+8) and then each row's eight lanes.
#define FOLDS256 \
	VADDPS Y1, Y0, Y0       \
	VADDPS Y3, Y2, Y2       \
	VADDPS Y5, Y4, Y4       \
	VADDPS Y7, Y6, Y6       \
	FOLD8(Y0, X0, 0)        \
	FOLD8(Y2, X2, 4)        \
	FOLD8(Y4, X4, 8)        \
	FOLD8(Y6, X6, 12)

#define ZERO256 \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3 \
	VXORPS Y4, Y4, Y4 \
	VXORPS Y5, Y5, Y5 \
	VXORPS Y6, Y6, Y6 \
	VXORPS Y7, Y7, Y7

// func matVec4BF16AVX2(w *uint16, ld int, x *float32, n int, y *float32)
TEXT ·matVec4BF16AVX2(SB), NOSPLIT, $0-40
	ROWS4
	ZERO256

bf256loop:
	VMOVUPS (DX)(AX*4), Y8
	VMOVUPS 32(DX)(AX*4), Y9
	BF16256(SI, Y10, Y11)
	BF16256(R8, Y13, Y14)
	ROW256(Y10, Y11, Y0, Y1)
	ROW256(Y13, Y14, Y2, Y3)
	BF16256(R9, Y10, Y11)
	BF16256(R10, Y13, Y14)
	ROW256(Y10, Y11, Y4, Y5)
	ROW256(Y13, Y14, Y6, Y7)
	ADDQ $16, AX
	CMPQ AX, CX
	JLT  bf256loop

	FOLDS256
	VZEROUPPER
	RET

// func matVec4F16AVX2(w *uint16, ld int, x *float32, n int, y *float32)
TEXT ·matVec4F16AVX2(SB), NOSPLIT, $0-40
	ROWS4
	ZERO256

f256loop:
	VMOVUPS (DX)(AX*4), Y8
	VMOVUPS 32(DX)(AX*4), Y9
	F16256(SI, Y10, Y11)
	F16256(R8, Y13, Y14)
	ROW256(Y10, Y11, Y0, Y1)
	ROW256(Y13, Y14, Y2, Y3)
	F16256(R9, Y10, Y11)
	F16256(R10, Y13, Y14)
	ROW256(Y10, Y11, Y4, Y5)
	ROW256(Y13, Y14, Y6, Y7)
	ADDQ $16, AX
	CMPQ AX, CX
	JLT  f256loop

	FOLDS256
	VZEROUPPER
	RET
