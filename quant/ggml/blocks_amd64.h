// Macros of the fused row kernels (blocks_amd64.s).

// DOTARGS loads a fused row kernel's arguments (y *float32, w *byte, rows,
// rowBytes int, x *float32, blocks int): y in DI, the row in SI, rows in
// R8, rowBytes in R9, x in DX, blocks in R10.
#define DOTARGS \
	MOVQ y+0(FP), DI            \
	MOVQ w+8(FP), SI            \
	MOVQ rows+16(FP), R8        \
	MOVQ rowBytes+24(FP), R9    \
	MOVQ x+32(FP), DX           \
	MOVQ blocks+40(FP), R10

// ROWSTART starts a row: its blocks at AX, x at BX, the block count in CX,
// the lanes (Y0) cleared. The VEX-encoded VXORPS clears all of Z0, so it
// starts a pair of rows of the AVX-512 kernels too (the second row's
// blocks at AX+R9, its lanes in Z0's high 256 bits).
#define ROWSTART \
	MOVQ   SI, AX     \
	MOVQ   DX, BX     \
	MOVQ   R10, CX    \
	VXORPS Y0, Y0, Y0

// ROWEND stores the row's sum (SUM8) at DI and moves to the next row and
// output; the caller loops while R8, the rows left, is not zero.
#define ROWEND \
	SUM8                \
	VMOVSS X0, (DI)     \
	ADDQ   $4, DI       \
	ADDQ   R9, SI       \
	DECQ   R8

// ADDSCALED adds to the lanes (Y0) the block lanes sd (Y8) times the fp16
// at doff(AX) (acc += d·sd); SUBSCALED subtracts sm (Y9) times the fp16 at
// moff(AX) (acc −= dmin·sm).
#define ADDSCALED(doff) \
	VPBROADCASTW doff(AX), X5 \
	VCVTPH2PS    X5, Y5       \
	VMULPS       Y5, Y8, Y8   \
	VADDPS       Y8, Y0, Y0

#define SUBSCALED(moff) \
	VPBROADCASTW moff(AX), X5 \
	VCVTPH2PS    X5, Y5       \
	VMULPS       Y5, Y9, Y9   \
	VSUBPS       Y9, Y0, Y0

// SCALEMINK4 writes a Q4_K or Q5_K block's 8 scales and 8 mins (the 12
// bytes at 4(AX)) as float32 into the frame at 0(SP) and 32(SP), unpacked
// in general registers as scaleMinK4 does: scales 0-3 are the low 6 bits
// of bytes 0-3, scales 4-7 the low nibbles of bytes 8-11 with the top 2
// bits of bytes 0-3 above; the mins the same from bytes 4-7 and the high
// nibbles of 8-11. Clobbers R11-R13 and Y1.
#define SCALEMINK4 \
	MOVL 12(AX), R12        \
	SIXBITS8(4, 0(SP))      \
	MOVL 12(AX), R12        \
	SHRL $4, R12            \
	SIXBITS8(8, 32(SP))

// SIXBITS8 writes as float32 at dst the 8 six-bit values of SCALEMINK4
// whose low 6 bits (values 0-3) are the 4 bytes at off(AX) and whose values
// 4-7 are the low nibbles of R12's bytes with those bytes' top 2 bits above.
#define SIXBITS8(off, dst) \
	MOVL      off(AX), R11   \
	MOVL      R11, R13       \
	SHRL      $2, R13        \
	ANDL      $0x30303030, R13 \
	ANDL      $0x3f3f3f3f, R11 \
	ANDL      $0x0f0f0f0f, R12 \
	ORL       R13, R12       \
	SHLQ      $32, R12       \
	ORQ       R11, R12       \
	MOVQ      R12, X1        \
	VPMOVZXBD X1, Y1         \
	VCVTDQ2PS Y1, Y1         \
	VMOVUPS   Y1, dst

// SUM8 folds the 8 lanes of Y0 into X0's low lane as sum8 does (clobbers
// X1).
#define SUM8 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVHLPS     X0, X0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVSHDUP    X0, X1     \
	VADDSS       X1, X0, X0

// Q4KSUB adds a 32-element sub-block of a Q4_K block to the block's lanes,
// sd (Y8) and sm (Y9): its codes are in Y10-Y13 (elements k, k+8, k+16,
// k+24 in lane k), its x at xoff(BX), its scale and min as float32 at
// soff(SP) and soff+32(SP).
#define Q4KSUB(xoff, soff) \
	VCVTDQ2PS    Y10, Y10          \
	VCVTDQ2PS    Y11, Y11          \
	VCVTDQ2PS    Y12, Y12          \
	VCVTDQ2PS    Y13, Y13          \
	VMULPS       xoff(BX), Y10, Y5 \
	VMULPS       xoff+32(BX), Y11, Y6 \
	VADDPS       Y6, Y5, Y5        \
	VMULPS       xoff+64(BX), Y12, Y6 \
	VADDPS       Y6, Y5, Y5        \
	VMULPS       xoff+96(BX), Y13, Y6 \
	VADDPS       Y6, Y5, Y5        \
	VMOVUPS      xoff(BX), Y7      \
	VADDPS       xoff+32(BX), Y7, Y7 \
	VADDPS       xoff+64(BX), Y7, Y7 \
	VADDPS       xoff+96(BX), Y7, Y7 \
	VBROADCASTSS soff(SP), Y6      \
	VMULPS       Y6, Y5, Y5        \
	VADDPS       Y5, Y8, Y8        \
	VBROADCASTSS soff+32(SP), Y6   \
	VMULPS       Y6, Y7, Y7        \
	VADDPS       Y7, Y9, Y9

// Q4KGROUP adds the two sub-blocks of the 32 code bytes at qoff(AX): the
// low nibbles (x at xoff(BX), scale and min at soff) and the high ones (x
// 32 floats on, scale and min 4 bytes on).
#define Q4KGROUP(qoff, xoff, soff) \
	VPMOVZXBD qoff(AX), Y1      \
	VPMOVZXBD qoff+8(AX), Y2    \
	VPMOVZXBD qoff+16(AX), Y3   \
	VPMOVZXBD qoff+24(AX), Y4   \
	VPAND     Y15, Y1, Y10      \
	VPAND     Y15, Y2, Y11      \
	VPAND     Y15, Y3, Y12      \
	VPAND     Y15, Y4, Y13      \
	Q4KSUB(xoff, soff)          \
	VPSRLD    $4, Y1, Y10       \
	VPSRLD    $4, Y2, Y11       \
	VPSRLD    $4, Y3, Y12       \
	VPSRLD    $4, Y4, Y13       \
	Q4KSUB(xoff+128, soff+4)

// Q6KSUB adds a 16-element sub-block of a Q6_K block to the block's lanes
// sd (Y8): its codes as int8 at coff(SP), its x at xoff(BX), its scale as
// float32 at soff(SP).
#define Q6KSUB(coff, xoff, soff) \
	VPMOVSXBD    coff(SP), Y4      \
	VPMOVSXBD    coff+8(SP), Y5    \
	VCVTDQ2PS    Y4, Y4            \
	VCVTDQ2PS    Y5, Y5            \
	VMULPS       xoff(BX), Y4, Y4  \
	VMULPS       xoff+32(BX), Y5, Y5 \
	VADDPS       Y5, Y4, Y4        \
	VBROADCASTSS soff(SP), Y6      \
	VMULPS       Y6, Y4, Y4        \
	VADDPS       Y4, Y8, Y8

// Q6KHALF decodes the 128 codes of half h of a Q6_K block (ql at 64h, qh
// at 128+32h) to int8 q−32 at 0(SP), in element order, 32 bytes at a time:
// quarter i takes the low (i even) or high nibbles of ql[0:32] (i < 2) or
// ql[32:64], and bits 2i, 2i+1 of qh shifted to bits 4, 5. Word shifts
// move bits across bytes only where the masks clear them.
#define Q6KHALF(qloff, qhoff) \
	VMOVDQU qloff(AX), Y1    \
	VMOVDQU qloff+32(AX), Y2 \
	VMOVDQU qhoff(AX), Y3    \
	VPAND   Y15, Y1, Y4      \
	VPSLLW  $4, Y3, Y5       \
	VPAND   Y14, Y5, Y5      \
	VPOR    Y5, Y4, Y4       \
	VPSUBB  Y13, Y4, Y4      \
	VMOVDQU Y4, 0(SP)        \
	VPAND   Y15, Y2, Y4      \
	VPSLLW  $2, Y3, Y5       \
	VPAND   Y14, Y5, Y5      \
	VPOR    Y5, Y4, Y4       \
	VPSUBB  Y13, Y4, Y4      \
	VMOVDQU Y4, 32(SP)       \
	VPSRLW  $4, Y1, Y4       \
	VPAND   Y15, Y4, Y4      \
	VPAND   Y14, Y3, Y5      \
	VPOR    Y5, Y4, Y4       \
	VPSUBB  Y13, Y4, Y4      \
	VMOVDQU Y4, 64(SP)       \
	VPSRLW  $4, Y2, Y4       \
	VPAND   Y15, Y4, Y4      \
	VPSRLW  $2, Y3, Y5       \
	VPAND   Y14, Y5, Y5      \
	VPOR    Y5, Y4, Y4       \
	VPSUBB  Y13, Y4, Y4      \
	VMOVDQU Y4, 96(SP)


// Q5KLO and Q5KHI put into Y10-Y13 the codes of a Q5_K sub-block: the low
// (Q5KLO) or high nibbles of the group's code bytes in Y1-Y4 with bit
// shift of the 32 qh bytes at 16(AX) as their fifth bit (Y14 holds 0x10,
// Y15 0x0f in every lane).
#define Q5KLO(shift) \
	Q5LO(16, shift, Y1, Y10) \
	Q5LO(24, shift, Y2, Y11) \
	Q5LO(32, shift, Y3, Y12) \
	Q5LO(40, shift, Y4, Y13)

#define Q5KHI(shift) \
	Q5HI(16, shift, Y1, Y10) \
	Q5HI(24, shift, Y2, Y11) \
	Q5HI(32, shift, Y3, Y12) \
	Q5HI(40, shift, Y4, Y13)

// Q5LO and Q5HI set the 8 codes Yd from the low or high nibbles of the
// code bytes Ys and bit shift of the 8 qh bytes at off(AX) (Q5BIT).
// Clobber Y5.
#define Q5LO(off, shift, Ys, Yd) \
	Q5BIT(off, shift, Yd)        \
	VPAND Y15, Ys, Y5            \
	VPOR  Y5, Yd, Yd

#define Q5HI(off, shift, Ys, Yd) \
	Q5BIT(off, shift, Yd)        \
	VPSRLD $4, Ys, Y5            \
	VPOR   Y5, Yd, Yd

// Q5BIT sets Yd to bit shift of the 8 qh bytes at off(AX), moved to bit 4.
#define Q5BIT(off, shift, Yd) \
	VPMOVZXBD off(AX), Yd     \
	VPSRLD    $shift, Yd, Yd  \
	VPSLLD    $4, Yd, Yd      \
	VPAND     Y14, Yd, Yd

// Q5KGROUP is Q4KGROUP for Q5_K, whose sub-blocks 2c and 2c+1 take their
// fifth bits from bits lo and hi of qh.
#define Q5KGROUP(qoff, xoff, soff, lo, hi) \
	VPMOVZXBD qoff(AX), Y1    \
	VPMOVZXBD qoff+8(AX), Y2  \
	VPMOVZXBD qoff+16(AX), Y3 \
	VPMOVZXBD qoff+24(AX), Y4 \
	Q5KLO(lo)                 \
	Q4KSUB(xoff, soff)        \
	Q5KHI(hi)                 \
	Q4KSUB(xoff+128, soff+4)

// Q2KSUB is Q6KSUB for a Q2_K sub-block, which also adds its min (at
// soff+64(SP)) times its sums of x to the block's lanes sm (Y9).
#define Q2KSUB(coff, xoff, soff) \
	Q6KSUB(coff, xoff, soff)       \
	VMOVUPS      xoff(BX), Y7      \
	VADDPS       xoff+32(BX), Y7, Y7 \
	VBROADCASTSS soff+64(SP), Y6   \
	VMULPS       Y6, Y7, Y7        \
	VADDPS       Y7, Y9, Y9

// ROW2END stores the two rows' sums at DI and DI+R12, each folded from its
// half of Z0 by SUM8 (so in sum8's order, as ROWEND would), and moves on to
// the next pair (R11 bytes of W, one output); the caller loops while R8,
// the pairs left, is not zero. Clobbers Y1 and Y2.
#define ROW2END \
	VEXTRACTF64X4 $1, Z0, Y2 \
	SUM8                     \
	VMOVSS        X0, (DI)   \
	VMOVAPS       Y2, Y0     \
	SUM8                     \
	VMOVSS        X0, (DI)(R12*1) \
	ADDQ          $4, DI     \
	ADDQ          R11, SI    \
	DECQ          R8

// PAIRQ puts into X the 8 bytes at off(AX) of the first row of a pair and
// those at off(AX)(R9*1) of the second, for a widening to their halves.
#define PAIRQ(off, X) \
	VMOVQ   off(AX), X \
	VPINSRQ $1, off(AX)(R9*1), X, X

// SCALE2 puts into Z5 the fp16 scales at (AX) and (AX)(R9*1), converted
// (exactly) to float32: the first in the low 8 lanes, the second in the
// high 8. Clobbers X6.
#define SCALE2 \
	VPBROADCASTW (AX), X5            \
	VPBROADCASTW (AX)(R9*1), X6      \
	VINSERTI128  $1, X6, Y5, Y5      \
	VCVTPH2PS    Y5, Z5

// ADDBLOCK2 adds a block of each of two rows to the lanes (Z0): the codes
// widened to int32 in Z1-Z4 (Z1 those of x's floats 0-7 at BX, Z2 of 8-15,
// Z3 of 16-23, Z4 of 24-31; the first row's in the low half, the second's
// in the high) converted, times x, summed, times the rows' scales (SCALE2).
// Clobbers Z1-Z9.
#define ADDBLOCK2 \
	VCVTDQ2PS       Z1, Z1        \
	VCVTDQ2PS       Z2, Z2        \
	VCVTDQ2PS       Z3, Z3        \
	VCVTDQ2PS       Z4, Z4        \
	VBROADCASTF32X8 (BX), Z6      \
	VBROADCASTF32X8 32(BX), Z7    \
	VBROADCASTF32X8 64(BX), Z8    \
	VBROADCASTF32X8 96(BX), Z9    \
	VMULPS          Z6, Z1, Z1    \
	VMULPS          Z7, Z2, Z2    \
	VMULPS          Z8, Z3, Z3    \
	VMULPS          Z9, Z4, Z4    \
	VADDPS          Z2, Z1, Z1    \
	VADDPS          Z3, Z1, Z1    \
	VADDPS          Z4, Z1, Z1    \
	SCALE2                        \
	VMULPS          Z5, Z1, Z1    \
	VADDPS          Z1, Z0, Z0
