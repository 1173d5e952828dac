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
// bits.

// func shrinkF32AVX2(s, x, a *float32, chunks, r int, scale float32)
TEXT ·shrinkF32AVX2(SB), NOSPLIT, $0-44
	MOVQ  s+0(FP), DI
	MOVQ  x+8(FP), SI
	MOVQ  a+16(FP), DX
	MOVQ  chunks+24(FP), R8
	MOVQ  r+32(FP), CX
	MOVSS scale+40(FP), X8

row32avx2:
	// Y0:Y1 add the even chunks, Y2:Y3 the odd ones.
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ   R8, R9
	MOVQ   SI, R10

chunk32avx2:
	CMPQ        R9, $2
	JLT         last32avx2
	VMOVUPS     (R10), Y4
	VMOVUPS     32(R10), Y5
	VMOVUPS     64(R10), Y6
	VMOVUPS     96(R10), Y7
	VFMADD231PS (DX), Y4, Y0
	VFMADD231PS 32(DX), Y5, Y1
	VFMADD231PS 64(DX), Y6, Y2
	VFMADD231PS 96(DX), Y7, Y3
	ADDQ        $128, R10
	ADDQ        $128, DX
	SUBQ        $2, R9
	JMP         chunk32avx2

last32avx2:
	TESTQ       R9, R9
	JZ          sum32avx2
	VMOVUPS     (R10), Y4
	VMOVUPS     32(R10), Y5
	VFMADD231PS (DX), Y4, Y0
	VFMADD231PS 32(DX), Y5, Y1
	ADDQ        $64, DX

sum32avx2:
	VADDPS Y2, Y0, Y0
	VADDPS Y3, Y1, Y1
	VADDPS Y1, Y0, Y0 // HSUM16's first fold, lane j with j+8
	HSUM8
	VMULSS X8, X0, X0
	VMOVSS X0, (DI)
	ADDQ   $4, DI
	DECQ   CX
	JNZ    row32avx2
	VZEROUPPER
	RET

// func shrinkF16AVX2(s, x *float32, a *uint16, chunks, r int, scale float32)
TEXT ·shrinkF16AVX2(SB), NOSPLIT, $0-44
	MOVQ  s+0(FP), DI
	MOVQ  x+8(FP), SI
	MOVQ  a+16(FP), DX
	MOVQ  chunks+24(FP), R8
	MOVQ  r+32(FP), CX
	MOVSS scale+40(FP), X8

row16avx2:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ   R8, R9
	MOVQ   SI, R10

chunk16avx2:
	CMPQ        R9, $2
	JLT         last16avx2
	VCVTPH2PS   (DX), Y4
	VCVTPH2PS   16(DX), Y5
	VCVTPH2PS   32(DX), Y6
	VCVTPH2PS   48(DX), Y7
	VFMADD231PS (R10), Y4, Y0
	VFMADD231PS 32(R10), Y5, Y1
	VFMADD231PS 64(R10), Y6, Y2
	VFMADD231PS 96(R10), Y7, Y3
	ADDQ        $128, R10
	ADDQ        $64, DX
	SUBQ        $2, R9
	JMP         chunk16avx2

last16avx2:
	TESTQ       R9, R9
	JZ          sum16avx2
	VCVTPH2PS   (DX), Y4
	VCVTPH2PS   16(DX), Y5
	VFMADD231PS (R10), Y4, Y0
	VFMADD231PS 32(R10), Y5, Y1
	ADDQ        $32, DX

sum16avx2:
	VADDPS Y2, Y0, Y0
	VADDPS Y3, Y1, Y1
	VADDPS Y1, Y0, Y0
	HSUM8
	VMULSS X8, X0, X0
	VMOVSS X0, (DI)
	ADDQ   $4, DI
	DECQ   CX
	JNZ    row16avx2
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

ochunk32avx2:
	// Y0:Y1 are y plus the even ranks' products, Y2:Y3 the odd ranks'.
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VXORPS  Y2, Y2, Y2
	VXORPS  Y3, Y3, Y3
	MOVQ    R12, CX
	MOVQ    SI, R10
	MOVQ    DX, R11

k32avx2:
	CMPQ         CX, $2
	JLT          klast32avx2
	VBROADCASTSS (R10), Y4
	VBROADCASTSS 4(R10), Y5
	VFMADD231PS  (R11), Y4, Y0
	VFMADD231PS  32(R11), Y4, Y1
	ADDQ         BX, R11
	VFMADD231PS  (R11), Y5, Y2
	VFMADD231PS  32(R11), Y5, Y3
	ADDQ         BX, R11
	ADDQ         $8, R10
	SUBQ         $2, CX
	JMP          k32avx2

klast32avx2:
	TESTQ        CX, CX
	JZ           store32avx2
	VBROADCASTSS (R10), Y4
	VFMADD231PS  (R11), Y4, Y0
	VFMADD231PS  32(R11), Y4, Y1

store32avx2:
	VADDPS  Y2, Y0, Y0
	VADDPS  Y3, Y1, Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    $64, DI
	ADDQ    $64, DX
	DECQ    R8
	JNZ     ochunk32avx2
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

ochunk16avx2:
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VXORPS  Y2, Y2, Y2
	VXORPS  Y3, Y3, Y3
	MOVQ    R12, CX
	MOVQ    SI, R10
	MOVQ    DX, R11

k16avx2:
	CMPQ         CX, $2
	JLT          klast16avx2
	VBROADCASTSS (R10), Y4
	VBROADCASTSS 4(R10), Y5
	VCVTPH2PS    (R11), Y6
	VCVTPH2PS    16(R11), Y7
	ADDQ         BX, R11
	VCVTPH2PS    (R11), Y8
	VCVTPH2PS    16(R11), Y9
	ADDQ         BX, R11
	VFMADD231PS  Y6, Y4, Y0
	VFMADD231PS  Y7, Y4, Y1
	VFMADD231PS  Y8, Y5, Y2
	VFMADD231PS  Y9, Y5, Y3
	ADDQ         $8, R10
	SUBQ         $2, CX
	JMP          k16avx2

klast16avx2:
	TESTQ        CX, CX
	JZ           store16avx2
	VBROADCASTSS (R10), Y4
	VCVTPH2PS    (R11), Y6
	VCVTPH2PS    16(R11), Y7
	VFMADD231PS  Y6, Y4, Y0
	VFMADD231PS  Y7, Y4, Y1

store16avx2:
	VADDPS  Y2, Y0, Y0
	VADDPS  Y3, Y1, Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    $64, DI
	ADDQ    $32, DX
	DECQ    R8
	JNZ     ochunk16avx2
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
