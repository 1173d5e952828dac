#include "textflag.h"

// func gemv4AVX512(w *float32, ld int, x *float32, n int, y *float32)
TEXT ·gemv4AVX512(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ ld+8(FP), BX
	SHLQ $2, BX
	MOVQ x+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ y+32(FP), DI
	LEAQ (SI)(BX*1), R8
	LEAQ (R8)(BX*1), R9
	LEAQ (R9)(BX*1), R10
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	XORQ AX, AX

loop32:
	CMPQ CX, $32
	JLT  loop16
	VMOVUPS (DX)(AX*1), Z8
	VMOVUPS 64(DX)(AX*1), Z9
	VFMADD231PS (SI)(AX*1), Z8, Z0
	VFMADD231PS 64(SI)(AX*1), Z9, Z4
	VFMADD231PS (R8)(AX*1), Z8, Z1
	VFMADD231PS 64(R8)(AX*1), Z9, Z5
	VFMADD231PS (R9)(AX*1), Z8, Z2
	VFMADD231PS 64(R9)(AX*1), Z9, Z6
	VFMADD231PS (R10)(AX*1), Z8, Z3
	VFMADD231PS 64(R10)(AX*1), Z9, Z7
	ADDQ $128, AX
	SUBQ $32, CX
	JMP  loop32

loop16:
	CMPQ CX, $16
	JLT  reduce
	VMOVUPS (DX)(AX*1), Z8
	VFMADD231PS (SI)(AX*1), Z8, Z0
	VFMADD231PS (R8)(AX*1), Z8, Z1
	VFMADD231PS (R9)(AX*1), Z8, Z2
	VFMADD231PS (R10)(AX*1), Z8, Z3

reduce:
	VADDPS Z4, Z0, Z0
	VADDPS Z5, Z1, Z1
	VADDPS Z6, Z2, Z2
	VADDPS Z7, Z3, Z3
	VEXTRACTF32X8 $1, Z0, Y8
	VADDPS Y8, Y0, Y0
	VEXTRACTF32X8 $1, Z1, Y9
	VADDPS Y9, Y1, Y1
	VEXTRACTF32X8 $1, Z2, Y10
	VADDPS Y10, Y2, Y2
	VEXTRACTF32X8 $1, Z3, Y11
	VADDPS Y11, Y3, Y3
	VEXTRACTF128 $1, Y0, X8
	VADDPS X8, X0, X0
	VEXTRACTF128 $1, Y1, X9
	VADDPS X9, X1, X1
	VEXTRACTF128 $1, Y2, X10
	VADDPS X10, X2, X2
	VEXTRACTF128 $1, Y3, X11
	VADDPS X11, X3, X3
	VHADDPS X1, X0, X0
	VHADDPS X3, X2, X2
	VHADDPS X2, X0, X0
	VMOVUPS X0, (DI)
	VZEROUPPER
	RET

// func gemv4AVX2(w *float32, ld int, x *float32, n int, y *float32)
// gemv4AVX512 in ymm registers: 16 elements a step in two accumulators per
// row (Y0..Y3 and Y4..Y7), then 8; n is a positive multiple of 8.
TEXT ·gemv4AVX2(SB), NOSPLIT, $0-40
	MOVQ   w+0(FP), SI
	MOVQ   ld+8(FP), BX
	SHLQ   $2, BX
	MOVQ   x+16(FP), DX
	MOVQ   n+24(FP), CX
	MOVQ   y+32(FP), DI
	LEAQ   (SI)(BX*1), R8
	LEAQ   (R8)(BX*1), R9
	LEAQ   (R9)(BX*1), R10
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ   AX, AX

avx2loop16:
	CMPQ        CX, $16
	JLT         avx2loop8
	VMOVUPS     (DX)(AX*1), Y8
	VMOVUPS     32(DX)(AX*1), Y9
	VFMADD231PS (SI)(AX*1), Y8, Y0
	VFMADD231PS 32(SI)(AX*1), Y9, Y4
	VFMADD231PS (R8)(AX*1), Y8, Y1
	VFMADD231PS 32(R8)(AX*1), Y9, Y5
	VFMADD231PS (R9)(AX*1), Y8, Y2
	VFMADD231PS 32(R9)(AX*1), Y9, Y6
	VFMADD231PS (R10)(AX*1), Y8, Y3
	VFMADD231PS 32(R10)(AX*1), Y9, Y7
	ADDQ        $64, AX
	SUBQ        $16, CX
	JMP         avx2loop16

avx2loop8:
	CMPQ        CX, $8
	JLT         avx2reduce
	VMOVUPS     (DX)(AX*1), Y8
	VFMADD231PS (SI)(AX*1), Y8, Y0
	VFMADD231PS (R8)(AX*1), Y8, Y1
	VFMADD231PS (R9)(AX*1), Y8, Y2
	VFMADD231PS (R10)(AX*1), Y8, Y3

avx2reduce:
	VADDPS       Y4, Y0, Y0
	VADDPS       Y5, Y1, Y1
	VADDPS       Y6, Y2, Y2
	VADDPS       Y7, Y3, Y3
	VEXTRACTF128 $1, Y0, X8
	VADDPS       X8, X0, X0
	VEXTRACTF128 $1, Y1, X9
	VADDPS       X9, X1, X1
	VEXTRACTF128 $1, Y2, X10
	VADDPS       X10, X2, X2
	VEXTRACTF128 $1, Y3, X11
	VADDPS       X11, X3, X3
	VHADDPS      X1, X0, X0
	VHADDPS      X3, X2, X2
	VHADDPS      X2, X0, X0
	VMOVUPS      X0, (DI)
	VZEROUPPER
	RET

// func gemv4SeqAVX2(w *float32, ld int, x *float32, n int, y *float32)
// gemv4AVX2 one row after the other: the four rows are one run of memory,
// read in order, which the hardware prefetcher follows as one stream (four
// rows read side by side are four short streams, which it follows badly).
// Each row's 32 elements a step go to four accumulators, then 8 a step to
// the first.
TEXT ·gemv4SeqAVX2(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ ld+8(FP), BX
	SHLQ $2, BX
	MOVQ x+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ y+32(FP), DI
	MOVQ $4, R13

seqRow:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ   AX, AX
	MOVQ   CX, R12

seq32:
	CMPQ        R12, $32
	JLT         seq8
	VMOVUPS     (SI)(AX*1), Y4
	VMOVUPS     32(SI)(AX*1), Y5
	VMOVUPS     64(SI)(AX*1), Y6
	VMOVUPS     96(SI)(AX*1), Y7
	VFMADD231PS (DX)(AX*1), Y4, Y0
	VFMADD231PS 32(DX)(AX*1), Y5, Y1
	VFMADD231PS 64(DX)(AX*1), Y6, Y2
	VFMADD231PS 96(DX)(AX*1), Y7, Y3
	ADDQ        $128, AX
	SUBQ        $32, R12
	JMP         seq32

seq8:
	CMPQ        R12, $8
	JLT         seqSum
	VMOVUPS     (SI)(AX*1), Y4
	VFMADD231PS (DX)(AX*1), Y4, Y0
	ADDQ        $32, AX
	SUBQ        $8, R12
	JMP         seq8

seqSum:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VMOVSS       X0, (DI)
	ADDQ         $4, DI
	ADDQ         BX, SI
	DECQ         R13
	JNZ          seqRow
	VZEROUPPER
	RET
