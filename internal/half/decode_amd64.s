// Vector decoders for amd64: BF16 and F16 to float32, 32 (AVX-512) or 16
// (AVX2) elements per step. The Go declarations are in decode_amd64.go.
//
// BF16 is the top half of a float32: zero-extend, shift left by 16.
// F16 is decoded with integer operations and one exact multiplication,
// which gives the same bits as F16ToFloat32 for every input: e = (h &
// 0x7fff) << 13 is the magnitude with F16's exponent bias; as a float32 it
// times 2¹¹² is the value (exact for normals and subnormals alike); Inf and
// NaN (e > 0x0f7fffff) instead get the float32 exponent by adding
// 0x70000000, which keeps the payload bits; the sign is ORed back last.

#include "textflag.h"

// BF16X32 decodes the 32 BF16 values at (SI) into Z0 (the first 16) and Z1
// and stores them at (DI).
#define BF16X32 \
	VPMOVZXWD (SI), Z0; \
	VPMOVZXWD 32(SI), Z1; \
	VPSLLD    $16, Z0, Z0; \
	VPSLLD    $16, Z1, Z1; \
	VMOVUPS   Z0, (DI); \
	VMOVUPS   Z1, 64(DI)

// func decodeBF16AVX512(dst *float32, src *byte, n int)
TEXT ·decodeBF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $5, CX
	JZ   bf512done

bf512loop:
	BF16X32
	ADDQ      $64, SI
	ADDQ      $128, DI
	DECQ      CX
	JNZ       bf512loop

bf512done:
	VZEROUPPER
	RET

// func decodeBF16AVX2(dst *float32, src *byte, n int)
TEXT ·decodeBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	JZ   bf256done

bf256loop:
	VPMOVZXWD (SI), Y0
	VPMOVZXWD 16(SI), Y1
	VPSLLD    $16, Y0, Y0
	VPSLLD    $16, Y1, Y1
	VMOVUPS   Y0, (DI)
	VMOVUPS   Y1, 32(DI)
	ADDQ      $32, SI
	ADDQ      $64, DI
	DECQ      CX
	JNZ       bf256loop

bf256done:
	VZEROUPPER
	RET

// F16512(off, off2) decodes the 16 F16 values at off(SI) (Z0 their words)
// and stores them at off2(DI), off2 = 2·off. Needs Z8 (0x7fff), Z9 (2¹¹²),
// Z10 (0x0f7fffff), Z11 (0x70000000), Z12 (0x8000). Uses Z1..Z3, K1.
#define F16512(off, off2) \
	VPMOVZXWD off(SI), Z0; \
	VPANDD    Z8, Z0, Z1; \
	VPSLLD    $13, Z1, Z1; \
	VMULPS    Z9, Z1, Z2; \
	VPCMPGTD  Z10, Z1, K1; \
	VPADDD    Z11, Z1, K1, Z2; \
	VPANDD    Z12, Z0, Z3; \
	VPSLLD    $16, Z3, Z3; \
	VPORD     Z3, Z2, Z2; \
	VMOVUPS   Z2, off2(DI)

// func decodeF16AVX512(dst *float32, src *byte, n int)
TEXT ·decodeF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $5, CX
	JZ   f512done
	MOVL         $0x7fff, AX
	VPBROADCASTD AX, Z8
	MOVL         $0x77800000, AX
	VPBROADCASTD AX, Z9
	MOVL         $0x0f7fffff, AX
	VPBROADCASTD AX, Z10
	MOVL         $0x70000000, AX
	VPBROADCASTD AX, Z11
	MOVL         $0x8000, AX
	VPBROADCASTD AX, Z12

f512loop:
	F16512(0, 0)
	F16512(32, 64)
	ADDQ $64, SI
	ADDQ $128, DI
	DECQ CX
	JNZ  f512loop

f512done:
	VZEROUPPER
	RET

// F16256(off, off2) is F16512 for 8 values with AVX2. Needs Y8..Y12 as
// F16512; uses Y1..Y5.
#define F16256(off, off2) \
	VPMOVZXWD off(SI), Y0; \
	VPAND     Y8, Y0, Y1; \
	VPSLLD    $13, Y1, Y1; \
	VMULPS    Y9, Y1, Y2; \
	VPCMPGTD  Y10, Y1, Y4; \
	VPADDD    Y11, Y1, Y5; \
	VBLENDVPS Y4, Y5, Y2, Y2; \
	VPAND     Y12, Y0, Y3; \
	VPSLLD    $16, Y3, Y3; \
	VPOR      Y3, Y2, Y2; \
	VMOVUPS   Y2, off2(DI)

#define BROADCAST256(v, r) \
	MOVL         v, AX; \
	VMOVD        AX, X0; \
	VPBROADCASTD X0, r

// func decodeF16AVX2(dst *float32, src *byte, n int)
TEXT ·decodeF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	JZ   f256done
	BROADCAST256($0x7fff, Y8)
	BROADCAST256($0x77800000, Y9)
	BROADCAST256($0x0f7fffff, Y10)
	BROADCAST256($0x70000000, Y11)
	BROADCAST256($0x8000, Y12)

f256loop:
	F16256(0, 0)
	F16256(16, 32)
	ADDQ $32, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  f256loop

f256done:
	VZEROUPPER
	RET

// func decodeBF16FiniteAVX512(dst *float32, src *byte, n int) (nonFinite bool)
// is decodeBF16AVX512 that also reports whether a value was NaN or ±Inf:
// the exponent bits of each value (x AND 0x7f800000) reach their maximum,
// 0x7f800000, only for those; Z4 keeps the running maximum.
TEXT ·decodeBF16FiniteAVX512(SB), NOSPLIT, $0-25
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	MOVL         $0x7f800000, AX
	VPBROADCASTD AX, Z8
	VPXORD       Z4, Z4, Z4
	SHRQ         $5, CX
	JZ           bff512done

bff512loop:
	BF16X32
	VPANDD    Z8, Z0, Z2
	VPANDD    Z8, Z1, Z3
	VPMAXUD   Z2, Z4, Z4
	VPMAXUD   Z3, Z4, Z4
	ADDQ      $64, SI
	ADDQ      $128, DI
	DECQ      CX
	JNZ       bff512loop

bff512done:
	VPCMPEQD Z8, Z4, K1
	KORTESTW K1, K1
	SETNE    nonFinite+24(FP)
	VZEROUPPER
	RET
