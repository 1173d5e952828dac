#include "textflag.h"

// ROW6_STEP(off) is one step k of a half of mulPanel6AVX2: the 16 columns
// of the panel's row k at DX+off in Y0, Y1, then each of the six rows of w
// (SI, SI+BX, SI+2·BX, R8, R8+BX, R8+2·BX) broadcast into Y14 or Y15 (two
// registers, so that a broadcast does not wait for the FMAs of the one
// before) for its two FMAs into Y2–Y13.
#define ROW6_STEP(off) \
	VMOVUPS      off(DX), Y0          \
	VMOVUPS      off+32(DX), Y1       \
	VBROADCASTSS (SI), Y14            \
	VFMADD231PS  Y14, Y0, Y2          \
	VFMADD231PS  Y14, Y1, Y3          \
	VBROADCASTSS (SI)(BX*1), Y15      \
	VFMADD231PS  Y15, Y0, Y4          \
	VFMADD231PS  Y15, Y1, Y5          \
	VBROADCASTSS (SI)(BX*2), Y14      \
	VFMADD231PS  Y14, Y0, Y6          \
	VFMADD231PS  Y14, Y1, Y7          \
	VBROADCASTSS (R8), Y15            \
	VFMADD231PS  Y15, Y0, Y8          \
	VFMADD231PS  Y15, Y1, Y9          \
	VBROADCASTSS (R8)(BX*1), Y14      \
	VFMADD231PS  Y14, Y0, Y10         \
	VFMADD231PS  Y14, Y1, Y11         \
	VBROADCASTSS (R8)(BX*2), Y15      \
	VFMADD231PS  Y15, Y0, Y12         \
	VFMADD231PS  Y15, Y1, Y13

// ZERO12 clears the accumulators Y2–Y13.
#define ZERO12 \
	VXORPS Y2, Y2, Y2    \
	VXORPS Y3, Y3, Y3    \
	VXORPS Y4, Y4, Y4    \
	VXORPS Y5, Y5, Y5    \
	VXORPS Y6, Y6, Y6    \
	VXORPS Y7, Y7, Y7    \
	VXORPS Y8, Y8, Y8    \
	VXORPS Y9, Y9, Y9    \
	VXORPS Y10, Y10, Y10 \
	VXORPS Y11, Y11, Y11 \
	VXORPS Y12, Y12, Y12 \
	VXORPS Y13, Y13, Y13

// STORE12(off) writes the accumulators of the six rows into t (DI), row r
// at DI + 128·r + off: a half of each row of 32 results.
#define STORE12(off) \
	VMOVUPS Y2, off(DI)      \
	VMOVUPS Y3, off+32(DI)   \
	VMOVUPS Y4, off+128(DI)  \
	VMOVUPS Y5, off+160(DI)  \
	VMOVUPS Y6, off+256(DI)  \
	VMOVUPS Y7, off+288(DI)  \
	VMOVUPS Y8, off+384(DI)  \
	VMOVUPS Y9, off+416(DI)  \
	VMOVUPS Y10, off+512(DI) \
	VMOVUPS Y11, off+544(DI) \
	VMOVUPS Y12, off+640(DI) \
	VMOVUPS Y13, off+672(DI)

// func mulPanel6AVX2(t *float32, w *float32, in int, xp *float32)
//
// mulPanel6AVX512 in 16 ymm registers: the 6×32 tile is two 6×16 halves,
// each a pass over k with its 12 accumulators (Y2–Y13), the two columns
// registers of the panel's row (Y0, Y1) and two broadcasts (Y14, Y15);
// each step is 8 loads for 12 FMAs, so the FMA units, not the loads, set
// the pace. The second pass reads the six rows of w again, from L1 (six
// rows of a few thousand elements). The first pass prefetches the next
// rows (R13) a cache line per step, as mulPanel6AVX512 does and for the
// same reason; the second, reading L1, does not.
TEXT ·mulPanel6AVX2(SB), NOSPLIT, $0-32
	MOVQ t+0(FP), DI
	MOVQ w+8(FP), R9
	MOVQ in+16(FP), R10
	MOVQ xp+24(FP), R11
	MOVQ R10, BX
	SHLQ $2, BX
	LEAQ (BX)(BX*2), AX
	LEAQ (R9)(AX*2), R13

	MOVQ R9, SI
	LEAQ (R9)(AX*1), R8
	MOVQ R11, DX
	MOVQ R10, CX
	ZERO12

lo:
	PREFETCHT0 (R13)
	ROW6_STEP(0)
	ADDQ $4, SI
	ADDQ $4, R8
	ADDQ $64, R13
	ADDQ $128, DX
	DECQ CX
	JNZ  lo
	STORE12(0)

	MOVQ R9, SI
	LEAQ (R9)(AX*1), R8
	MOVQ R11, DX
	MOVQ R10, CX
	ZERO12

hi:
	ROW6_STEP(64)
	ADDQ $4, SI
	ADDQ $4, R8
	ADDQ $128, DX
	DECQ CX
	JNZ  hi
	STORE12(64)
	VZEROUPPER
	RET

// func transpose8AVX2(dst *float32, ldd int, src *float32, lds int)
//
// dst[m·ldd + i] = src[i·lds + m] for i, m < 8. Register Yi (i < 4) holds
// the first four columns of rows i and i+4 of src, one per 128-bit lane,
// and Y(i+4) their last four; the unpacks of float pairs, then of double
// pairs, transpose each lane's 4×4 block, which leaves output row m whole
// in one register: no shuffle across lanes.
TEXT ·transpose8AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), BX
	SHLQ $2, BX
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), CX
	SHLQ $2, CX
	LEAQ (CX)(CX*2), DX
	LEAQ (SI)(CX*4), R8
	VMOVUPS     (SI), X0
	VINSERTF128 $1, (R8), Y0, Y0
	VMOVUPS     16(SI), X4
	VINSERTF128 $1, 16(R8), Y4, Y4
	VMOVUPS     (SI)(CX*1), X1
	VINSERTF128 $1, (R8)(CX*1), Y1, Y1
	VMOVUPS     16(SI)(CX*1), X5
	VINSERTF128 $1, 16(R8)(CX*1), Y5, Y5
	VMOVUPS     (SI)(CX*2), X2
	VINSERTF128 $1, (R8)(CX*2), Y2, Y2
	VMOVUPS     16(SI)(CX*2), X6
	VINSERTF128 $1, 16(R8)(CX*2), Y6, Y6
	VMOVUPS     (SI)(DX*1), X3
	VINSERTF128 $1, (R8)(DX*1), Y3, Y3
	VMOVUPS     16(SI)(DX*1), X7
	VINSERTF128 $1, 16(R8)(DX*1), Y7, Y7
	VUNPCKLPS   Y1, Y0, Y8
	VUNPCKHPS   Y1, Y0, Y9
	VUNPCKLPS   Y3, Y2, Y10
	VUNPCKHPS   Y3, Y2, Y11
	VUNPCKLPS   Y5, Y4, Y12
	VUNPCKHPS   Y5, Y4, Y13
	VUNPCKLPS   Y7, Y6, Y14
	VUNPCKHPS   Y7, Y6, Y15
	VUNPCKLPD   Y10, Y8, Y0
	VUNPCKHPD   Y10, Y8, Y1
	VUNPCKLPD   Y11, Y9, Y2
	VUNPCKHPD   Y11, Y9, Y3
	VUNPCKLPD   Y14, Y12, Y4
	VUNPCKHPD   Y14, Y12, Y5
	VUNPCKLPD   Y15, Y13, Y6
	VUNPCKHPD   Y15, Y13, Y7
	LEAQ        (BX)(BX*2), DX
	LEAQ        (DI)(BX*4), R8
	VMOVUPS     Y0, (DI)
	VMOVUPS     Y1, (DI)(BX*1)
	VMOVUPS     Y2, (DI)(BX*2)
	VMOVUPS     Y3, (DI)(DX*1)
	VMOVUPS     Y4, (R8)
	VMOVUPS     Y5, (R8)(BX*1)
	VMOVUPS     Y6, (R8)(BX*2)
	VMOVUPS     Y7, (R8)(DX*1)
	VZEROUPPER
	RET
