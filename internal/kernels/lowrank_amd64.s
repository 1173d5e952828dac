#include "textflag.h"
#include "hsum_amd64.h"

// func shrinkF32AVX512(s, x, a *float32, chunks, r int, scale float32)
TEXT ·shrinkF32AVX512(SB), NOSPLIT, $0-44
	MOVQ  s+0(FP), DI
	MOVQ  x+8(FP), SI
	MOVQ  a+16(FP), DX
	MOVQ  chunks+24(FP), R8
	MOVQ  r+32(FP), CX
	MOVSS scale+40(FP), X7

row32:
	VPXORD Z0, Z0, Z0
	VPXORD Z2, Z2, Z2
	MOVQ   R8, R9
	MOVQ   SI, R10

chunk32:
	CMPQ        R9, $2
	JLT         last32
	VMOVUPS     (R10), Z1
	VMOVUPS     64(R10), Z3
	VFMADD231PS (DX), Z1, Z0
	VFMADD231PS 64(DX), Z3, Z2
	ADDQ        $128, R10
	ADDQ        $128, DX
	SUBQ        $2, R9
	JMP         chunk32

last32:
	TESTQ       R9, R9
	JZ          sum32
	VMOVUPS     (R10), Z1
	VFMADD231PS (DX), Z1, Z0
	ADDQ        $64, DX

sum32:
	VADDPS Z2, Z0, Z0
	HSUM16
	VMULSS X7, X0, X0
	VMOVSS X0, (DI)
	ADDQ   $4, DI
	DECQ   CX
	JNZ    row32
	VZEROUPPER
	RET

// func shrinkF16AVX512(s, x *float32, a *uint16, chunks, r int, scale float32)
TEXT ·shrinkF16AVX512(SB), NOSPLIT, $0-44
	MOVQ  s+0(FP), DI
	MOVQ  x+8(FP), SI
	MOVQ  a+16(FP), DX
	MOVQ  chunks+24(FP), R8
	MOVQ  r+32(FP), CX
	MOVSS scale+40(FP), X7

row16:
	VPXORD Z0, Z0, Z0
	VPXORD Z2, Z2, Z2
	MOVQ   R8, R9
	MOVQ   SI, R10

chunk16:
	CMPQ        R9, $2
	JLT         last16
	VCVTPH2PS   (DX), Z4
	VCVTPH2PS   32(DX), Z5
	VFMADD231PS (R10), Z4, Z0
	VFMADD231PS 64(R10), Z5, Z2
	ADDQ        $128, R10
	ADDQ        $64, DX
	SUBQ        $2, R9
	JMP         chunk16

last16:
	TESTQ       R9, R9
	JZ          sum16
	VCVTPH2PS   (DX), Z4
	VFMADD231PS (R10), Z4, Z0
	ADDQ        $32, DX

sum16:
	VADDPS Z2, Z0, Z0
	HSUM16
	VMULSS X7, X0, X0
	VMOVSS X0, (DI)
	ADDQ   $4, DI
	DECQ   CX
	JNZ    row16
	VZEROUPPER
	RET

// func expandF32AVX512(y, s, bt *float32, chunks, r, ld int)
TEXT ·expandF32AVX512(SB), NOSPLIT, $0-48
	MOVQ y+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ bt+16(FP), DX
	MOVQ chunks+24(FP), R8
	MOVQ r+32(FP), R12
	MOVQ ld+40(FP), BX
	SHLQ $2, BX

ochunk32:
	VMOVUPS (DI), Z0
	VPXORD  Z2, Z2, Z2
	MOVQ    R12, CX
	MOVQ    SI, R10
	MOVQ    DX, R11

k32:
	CMPQ         CX, $2
	JLT          klast32
	VBROADCASTSS (R10), Z1
	VBROADCASTSS 4(R10), Z3
	VFMADD231PS  (R11), Z1, Z0
	ADDQ         BX, R11
	VFMADD231PS  (R11), Z3, Z2
	ADDQ         BX, R11
	ADDQ         $8, R10
	SUBQ         $2, CX
	JMP          k32

klast32:
	TESTQ        CX, CX
	JZ           store32
	VBROADCASTSS (R10), Z1
	VFMADD231PS  (R11), Z1, Z0

store32:
	VADDPS  Z2, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, DI
	ADDQ    $64, DX
	DECQ    R8
	JNZ     ochunk32
	VZEROUPPER
	RET

// func expandF16AVX512(y, s *float32, bt *uint16, chunks, r, ld int)
TEXT ·expandF16AVX512(SB), NOSPLIT, $0-48
	MOVQ y+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ bt+16(FP), DX
	MOVQ chunks+24(FP), R8
	MOVQ r+32(FP), R12
	MOVQ ld+40(FP), BX
	SHLQ $1, BX

ochunk16:
	VMOVUPS (DI), Z0
	VPXORD  Z2, Z2, Z2
	MOVQ    R12, CX
	MOVQ    SI, R10
	MOVQ    DX, R11

k16:
	CMPQ         CX, $2
	JLT          klast16
	VBROADCASTSS (R10), Z1
	VBROADCASTSS 4(R10), Z3
	VCVTPH2PS    (R11), Z4
	ADDQ         BX, R11
	VCVTPH2PS    (R11), Z5
	ADDQ         BX, R11
	VFMADD231PS  Z4, Z1, Z0
	VFMADD231PS  Z5, Z3, Z2
	ADDQ         $8, R10
	SUBQ         $2, CX
	JMP          k16

klast16:
	TESTQ        CX, CX
	JZ           store16
	VBROADCASTSS (R10), Z1
	VCVTPH2PS    (R11), Z4
	VFMADD231PS  Z4, Z1, Z0

store16:
	VADDPS  Z2, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, DI
	ADDQ    $32, DX
	DECQ    R8
	JNZ     ochunk16
	VZEROUPPER
	RET

// func f16ToF32AVX512(dst *float32, src *uint16, chunks int)
TEXT ·f16ToF32AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ chunks+16(FP), CX

cvt:
	VCVTPH2PS (SI), Z0
	VMOVUPS   Z0, (DI)
	ADDQ      $32, SI
	ADDQ      $64, DI
	DECQ      CX
	JNZ       cvt
	VZEROUPPER
	RET

// The AVX2 kernels below are the AVX-512 ones above with each 16-lane
// register held as two 8-lane ones (low lanes first): the same fused
// multiply-adds into the same accumulators in the same order, so the same
// bits. For more multiply-adds in flight than two 16-lane accumulators
// give, the shrinks run two rows of a at a time (x read once for both) and
// the expands 32 columns at a time; each row or column's sums are the same.

// ROWSUM adds a row's accumulators lo0:hi0 (the even chunks) and lo1:hi1
// (the odd ones) lane by lane, folds the 16 lanes in halves as HSUM16 and
// stores the sum times scale (a memory operand) at off(DI). It clobbers Y0
// and Y1.
#define ROWSUM(lo0, hi0, lo1, hi1, scale, off) \
	VADDPS lo1, lo0, Y0         \
	VADDPS hi1, hi0, Y1         \
	VADDPS Y1, Y0, Y0           \
	HSUM8                       \
	VMULSS scale, X0, X0        \
	VMOVSS X0, off(DI)

// func shrinkF32AVX2(s, x, a *float32, chunks, r int, scale float32)
TEXT ·shrinkF32AVX2(SB), NOSPLIT, $0-44
	MOVQ s+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ a+16(FP), DX
	MOVQ chunks+24(FP), R8
	MOVQ r+32(FP), CX
	MOVQ R8, R13
	SHLQ $6, R13      // bytes per row of a

pair32avx2:
	// Rows k (Y0:Y1 the even chunks, Y2:Y3 the odd) and k+1 (Y4:Y5, Y6:Y7).
	CMPQ   CX, $2
	JLT    row32avx2
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ   R8, R9
	MOVQ   SI, R10

pchunk32avx2:
	CMPQ        R9, $2
	JLT         plast32avx2
	VMOVUPS     (R10), Y8
	VMOVUPS     32(R10), Y9
	VMOVUPS     64(R10), Y10
	VMOVUPS     96(R10), Y11
	VFMADD231PS (DX), Y8, Y0
	VFMADD231PS 32(DX), Y9, Y1
	VFMADD231PS 64(DX), Y10, Y2
	VFMADD231PS 96(DX), Y11, Y3
	VFMADD231PS (DX)(R13*1), Y8, Y4
	VFMADD231PS 32(DX)(R13*1), Y9, Y5
	VFMADD231PS 64(DX)(R13*1), Y10, Y6
	VFMADD231PS 96(DX)(R13*1), Y11, Y7
	ADDQ        $128, R10
	ADDQ        $128, DX
	SUBQ        $2, R9
	JMP         pchunk32avx2

plast32avx2:
	TESTQ       R9, R9
	JZ          psum32avx2
	VMOVUPS     (R10), Y8
	VMOVUPS     32(R10), Y9
	VFMADD231PS (DX), Y8, Y0
	VFMADD231PS 32(DX), Y9, Y1
	VFMADD231PS (DX)(R13*1), Y8, Y4
	VFMADD231PS 32(DX)(R13*1), Y9, Y5
	ADDQ        $64, DX

psum32avx2:
	ADDQ R13, DX // past row k+1
	ROWSUM(Y0, Y1, Y2, Y3, scale+40(FP), 0)
	ROWSUM(Y4, Y5, Y6, Y7, scale+40(FP), 4)
	ADDQ $8, DI
	SUBQ $2, CX
	JMP  pair32avx2

row32avx2:
	// The last row of an odd r.
	TESTQ  CX, CX
	JZ     done32avx2
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ   R8, R9
	MOVQ   SI, R10

chunk32avx2:
	CMPQ        R9, $2
	JLT         last32avx2
	VMOVUPS     (R10), Y8
	VMOVUPS     32(R10), Y9
	VMOVUPS     64(R10), Y10
	VMOVUPS     96(R10), Y11
	VFMADD231PS (DX), Y8, Y0
	VFMADD231PS 32(DX), Y9, Y1
	VFMADD231PS 64(DX), Y10, Y2
	VFMADD231PS 96(DX), Y11, Y3
	ADDQ        $128, R10
	ADDQ        $128, DX
	SUBQ        $2, R9
	JMP         chunk32avx2

last32avx2:
	TESTQ       R9, R9
	JZ          sum32avx2
	VMOVUPS     (R10), Y8
	VMOVUPS     32(R10), Y9
	VFMADD231PS (DX), Y8, Y0
	VFMADD231PS 32(DX), Y9, Y1

sum32avx2:
	ROWSUM(Y0, Y1, Y2, Y3, scale+40(FP), 0)

done32avx2:
	VZEROUPPER
	RET

// func shrinkF16AVX2(s, x *float32, a *uint16, chunks, r int, scale float32)
TEXT ·shrinkF16AVX2(SB), NOSPLIT, $0-44
	MOVQ s+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ a+16(FP), DX
	MOVQ chunks+24(FP), R8
	MOVQ r+32(FP), CX
	MOVQ R8, R13
	SHLQ $5, R13      // bytes per row of a

pair16avx2:
	CMPQ   CX, $2
	JLT    row16avx2
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ   R8, R9
	MOVQ   SI, R10

pchunk16avx2:
	CMPQ        R9, $2
	JLT         plast16avx2
	VMOVUPS     (R10), Y8
	VMOVUPS     32(R10), Y9
	VMOVUPS     64(R10), Y10
	VMOVUPS     96(R10), Y11
	VCVTPH2PS   (DX), Y12
	VCVTPH2PS   16(DX), Y13
	VCVTPH2PS   32(DX), Y14
	VCVTPH2PS   48(DX), Y15
	VFMADD231PS Y12, Y8, Y0
	VFMADD231PS Y13, Y9, Y1
	VFMADD231PS Y14, Y10, Y2
	VFMADD231PS Y15, Y11, Y3
	VCVTPH2PS   (DX)(R13*1), Y12
	VCVTPH2PS   16(DX)(R13*1), Y13
	VCVTPH2PS   32(DX)(R13*1), Y14
	VCVTPH2PS   48(DX)(R13*1), Y15
	VFMADD231PS Y12, Y8, Y4
	VFMADD231PS Y13, Y9, Y5
	VFMADD231PS Y14, Y10, Y6
	VFMADD231PS Y15, Y11, Y7
	ADDQ        $128, R10
	ADDQ        $64, DX
	SUBQ        $2, R9
	JMP         pchunk16avx2

plast16avx2:
	TESTQ       R9, R9
	JZ          psum16avx2
	VMOVUPS     (R10), Y8
	VMOVUPS     32(R10), Y9
	VCVTPH2PS   (DX), Y12
	VCVTPH2PS   16(DX), Y13
	VCVTPH2PS   (DX)(R13*1), Y14
	VCVTPH2PS   16(DX)(R13*1), Y15
	VFMADD231PS Y12, Y8, Y0
	VFMADD231PS Y13, Y9, Y1
	VFMADD231PS Y14, Y8, Y4
	VFMADD231PS Y15, Y9, Y5
	ADDQ        $32, DX

psum16avx2:
	ADDQ R13, DX
	ROWSUM(Y0, Y1, Y2, Y3, scale+40(FP), 0)
	ROWSUM(Y4, Y5, Y6, Y7, scale+40(FP), 4)
	ADDQ $8, DI
	SUBQ $2, CX
	JMP  pair16avx2

row16avx2:
	TESTQ  CX, CX
	JZ     done16avx2
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ   R8, R9
	MOVQ   SI, R10

chunk16avx2:
	CMPQ        R9, $2
	JLT         last16avx2
	VCVTPH2PS   (DX), Y12
	VCVTPH2PS   16(DX), Y13
	VCVTPH2PS   32(DX), Y14
	VCVTPH2PS   48(DX), Y15
	VFMADD231PS (R10), Y12, Y0
	VFMADD231PS 32(R10), Y13, Y1
	VFMADD231PS 64(R10), Y14, Y2
	VFMADD231PS 96(R10), Y15, Y3
	ADDQ        $128, R10
	ADDQ        $64, DX
	SUBQ        $2, R9
	JMP         chunk16avx2

last16avx2:
	TESTQ       R9, R9
	JZ          sum16avx2
	VCVTPH2PS   (DX), Y12
	VCVTPH2PS   16(DX), Y13
	VFMADD231PS (R10), Y12, Y0
	VFMADD231PS 32(R10), Y13, Y1

sum16avx2:
	ROWSUM(Y0, Y1, Y2, Y3, scale+40(FP), 0)

done16avx2:
	VZEROUPPER
	RET

// func expandF32AVX2(y, s, bt *float32, chunks, r, ld int)
TEXT ·expandF32AVX2(SB), NOSPLIT, $0-48
	MOVQ y+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ bt+16(FP), DX
	MOVQ chunks+24(FP), R8
	MOVQ r+32(FP), R12
	MOVQ ld+40(FP), BX
	SHLQ $2, BX

ochunks32avx2:
	// 32 columns: Y0:Y1 and Y2:Y3 are y plus the even ranks' products,
	// Y4:Y5 and Y6:Y7 the odd ranks'.
	CMPQ    R8, $2
	JLT     ochunk32avx2
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VXORPS  Y4, Y4, Y4
	VXORPS  Y5, Y5, Y5
	VXORPS  Y6, Y6, Y6
	VXORPS  Y7, Y7, Y7
	MOVQ    R12, CX
	MOVQ    SI, R10
	MOVQ    DX, R11

kk32avx2:
	CMPQ         CX, $2
	JLT          kklast32avx2
	VBROADCASTSS (R10), Y8
	VBROADCASTSS 4(R10), Y9
	VFMADD231PS  (R11), Y8, Y0
	VFMADD231PS  32(R11), Y8, Y1
	VFMADD231PS  64(R11), Y8, Y2
	VFMADD231PS  96(R11), Y8, Y3
	ADDQ         BX, R11
	VFMADD231PS  (R11), Y9, Y4
	VFMADD231PS  32(R11), Y9, Y5
	VFMADD231PS  64(R11), Y9, Y6
	VFMADD231PS  96(R11), Y9, Y7
	ADDQ         BX, R11
	ADDQ         $8, R10
	SUBQ         $2, CX
	JMP          kk32avx2

kklast32avx2:
	TESTQ        CX, CX
	JZ           kkstore32avx2
	VBROADCASTSS (R10), Y8
	VFMADD231PS  (R11), Y8, Y0
	VFMADD231PS  32(R11), Y8, Y1
	VFMADD231PS  64(R11), Y8, Y2
	VFMADD231PS  96(R11), Y8, Y3

kkstore32avx2:
	VADDPS  Y4, Y0, Y0
	VADDPS  Y5, Y1, Y1
	VADDPS  Y6, Y2, Y2
	VADDPS  Y7, Y3, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ    $128, DI
	ADDQ    $128, DX
	SUBQ    $2, R8
	JMP     ochunks32avx2

ochunk32avx2:
	// The last 16 columns of an odd number of chunks.
	TESTQ   R8, R8
	JZ      done32eavx2
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VXORPS  Y4, Y4, Y4
	VXORPS  Y5, Y5, Y5
	MOVQ    R12, CX
	MOVQ    SI, R10
	MOVQ    DX, R11

k32avx2:
	CMPQ         CX, $2
	JLT          klast32avx2
	VBROADCASTSS (R10), Y8
	VBROADCASTSS 4(R10), Y9
	VFMADD231PS  (R11), Y8, Y0
	VFMADD231PS  32(R11), Y8, Y1
	ADDQ         BX, R11
	VFMADD231PS  (R11), Y9, Y4
	VFMADD231PS  32(R11), Y9, Y5
	ADDQ         BX, R11
	ADDQ         $8, R10
	SUBQ         $2, CX
	JMP          k32avx2

klast32avx2:
	TESTQ        CX, CX
	JZ           store32avx2
	VBROADCASTSS (R10), Y8
	VFMADD231PS  (R11), Y8, Y0
	VFMADD231PS  32(R11), Y8, Y1

store32avx2:
	VADDPS  Y4, Y0, Y0
	VADDPS  Y5, Y1, Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)

done32eavx2:
	VZEROUPPER
	RET

// func expandF16AVX2(y, s *float32, bt *uint16, chunks, r, ld int)
TEXT ·expandF16AVX2(SB), NOSPLIT, $0-48
	MOVQ y+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ bt+16(FP), DX
	MOVQ chunks+24(FP), R8
	MOVQ r+32(FP), R12
	MOVQ ld+40(FP), BX
	SHLQ $1, BX

ochunks16avx2:
	CMPQ    R8, $2
	JLT     ochunk16avx2
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VXORPS  Y4, Y4, Y4
	VXORPS  Y5, Y5, Y5
	VXORPS  Y6, Y6, Y6
	VXORPS  Y7, Y7, Y7
	MOVQ    R12, CX
	MOVQ    SI, R10
	MOVQ    DX, R11

kk16avx2:
	CMPQ         CX, $2
	JLT          kklast16avx2
	VBROADCASTSS (R10), Y8
	VBROADCASTSS 4(R10), Y9
	VCVTPH2PS    (R11), Y10
	VCVTPH2PS    16(R11), Y11
	VCVTPH2PS    32(R11), Y12
	VCVTPH2PS    48(R11), Y13
	ADDQ         BX, R11
	VFMADD231PS  Y10, Y8, Y0
	VFMADD231PS  Y11, Y8, Y1
	VFMADD231PS  Y12, Y8, Y2
	VFMADD231PS  Y13, Y8, Y3
	VCVTPH2PS    (R11), Y10
	VCVTPH2PS    16(R11), Y11
	VCVTPH2PS    32(R11), Y12
	VCVTPH2PS    48(R11), Y13
	ADDQ         BX, R11
	VFMADD231PS  Y10, Y9, Y4
	VFMADD231PS  Y11, Y9, Y5
	VFMADD231PS  Y12, Y9, Y6
	VFMADD231PS  Y13, Y9, Y7
	ADDQ         $8, R10
	SUBQ         $2, CX
	JMP          kk16avx2

kklast16avx2:
	TESTQ        CX, CX
	JZ           kkstore16avx2
	VBROADCASTSS (R10), Y8
	VCVTPH2PS    (R11), Y10
	VCVTPH2PS    16(R11), Y11
	VCVTPH2PS    32(R11), Y12
	VCVTPH2PS    48(R11), Y13
	VFMADD231PS  Y10, Y8, Y0
	VFMADD231PS  Y11, Y8, Y1
	VFMADD231PS  Y12, Y8, Y2
	VFMADD231PS  Y13, Y8, Y3

kkstore16avx2:
	VADDPS  Y4, Y0, Y0
	VADDPS  Y5, Y1, Y1
	VADDPS  Y6, Y2, Y2
	VADDPS  Y7, Y3, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ    $128, DI
	ADDQ    $64, DX
	SUBQ    $2, R8
	JMP     ochunks16avx2

ochunk16avx2:
	TESTQ   R8, R8
	JZ      done16eavx2
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VXORPS  Y4, Y4, Y4
	VXORPS  Y5, Y5, Y5
	MOVQ    R12, CX
	MOVQ    SI, R10
	MOVQ    DX, R11

k16avx2:
	CMPQ         CX, $2
	JLT          klast16avx2
	VBROADCASTSS (R10), Y8
	VBROADCASTSS 4(R10), Y9
	VCVTPH2PS    (R11), Y10
	VCVTPH2PS    16(R11), Y11
	ADDQ         BX, R11
	VCVTPH2PS    (R11), Y12
	VCVTPH2PS    16(R11), Y13
	ADDQ         BX, R11
	VFMADD231PS  Y10, Y8, Y0
	VFMADD231PS  Y11, Y8, Y1
	VFMADD231PS  Y12, Y9, Y4
	VFMADD231PS  Y13, Y9, Y5
	ADDQ         $8, R10
	SUBQ         $2, CX
	JMP          k16avx2

klast16avx2:
	TESTQ        CX, CX
	JZ           store16avx2
	VBROADCASTSS (R10), Y8
	VCVTPH2PS    (R11), Y10
	VCVTPH2PS    16(R11), Y11
	VFMADD231PS  Y10, Y8, Y0
	VFMADD231PS  Y11, Y8, Y1

store16avx2:
	VADDPS  Y4, Y0, Y0
	VADDPS  Y5, Y1, Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)

done16eavx2:
	VZEROUPPER
	RET

// func f16ToF32AVX2(dst *float32, src *uint16, chunks int)
TEXT ·f16ToF32AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ chunks+16(FP), CX

cvtavx2:
	VCVTPH2PS (SI), Y0
	VCVTPH2PS 16(SI), Y1
	VMOVUPS   Y0, (DI)
	VMOVUPS   Y1, 32(DI)
	ADDQ      $32, SI
	ADDQ      $64, DI
	DECQ      CX
	JNZ       cvtavx2
	VZEROUPPER
	RET
