// Shared by int8dot_amd64.s and int8mat_amd64.s: the folds of an int8
// product's sixteen float32 lanes into one float32, in halves (j+8, j+4,
// j+2, j+1) as int8Fold adds them so that the kernels give the Go code's
// bits, the four-row kernels' row walk, and the AVX2 kernels' signed byte
// dot products.

// FOLD8(y, x, t) leaves lane 0 + … + lane 7 of y in x (y's low half), with
// t (an X register) as scratch.
#define FOLD8(y, x, t) \
	VEXTRACTF128 $1, y, t \
	VADDPS       t, x, x  \
	VMOVHLPS     x, x, t  \
	VADDPS       t, x, x  \
	VMOVSHDUP    x, t     \
	VADDSS       t, x, x

// FOLD16(z, y, x) leaves lane 0 + … + lane 15 of z in x (y its low half);
// it uses Z10.
#define FOLD16(z, y, x) \
	VEXTRACTF64X4 $1, z, Y10 \
	VADDPS        Y10, y, y  \
	FOLD8(y, x, X10)

// FOLD8X2 is FOLD16 with AVX2, lanes 0–7 in Y0 and 8–15 in Y1: it leaves
// their sum in X0 and uses Y1.
#define FOLD8X2 \
	VADDPS Y1, Y0, Y0 \
	FOLD8(Y0, X0, X1)

// DOT2AVX2(q0, q1) leaves in Y6 the eight int32 lanes of the signed byte
// products Y4·q0 + Y5·q1, four consecutive bytes of each to a lane as
// VPDPBUSD adds them: VPMADDUBSW of |Y4| (|Y5|) with the codes at q0 (q1)
// carrying Y4's (Y5's) signs, then VPMADDWD by the ones in Y13 adding the
// int16 pairs. With every byte in [−127, 127] the int16 pair sums,
// at most 2·127·127, cannot saturate. It clobbers Y4, Y5 and Y7.
#define DOT2AVX2(q0, q1) \
	VMOVDQU    q0, Y6      \
	VMOVDQU    q1, Y7      \
	VPSIGNB    Y4, Y6, Y6  \
	VPSIGNB    Y5, Y7, Y7  \
	VPABSB     Y4, Y4      \
	VPABSB     Y5, Y5      \
	VPMADDUBSW Y6, Y4, Y6  \
	VPMADDUBSW Y7, Y5, Y7  \
	VPMADDWD   Y13, Y6, Y6 \
	VPMADDWD   Y13, Y7, Y7 \
	VPADDD     Y7, Y6, Y6

// The four-row kernels (int8Rows4VNNI, int8Rows4VBMI, int8MatRows4VNNI)
// walk four rows of codes from SI (rowBytes in DX) and of block scales from
// AX (scaleBytes in R14), the fourth row's by R13 and CX, lanes in Z0–Z3.

// ROW3 points R13 and CX at the fourth row's codes and block scales.
#define ROW3 \
	LEAQ (SI)(DX*2), R13 \
	ADDQ DX, R13         \
	LEAQ (AX)(R14*2), CX \
	ADDQ R14, CX

// SCALESAHEAD(loop) prefetches the block scales of the four rows sixteen
// rows on: one run of memory. It uses R11 and R12; loop names its label.
#define SCALESAHEAD(loop) \
	LEAQ (AX)(R14*8), R11 \
	LEAQ (R11)(R14*8), R11 \
	MOVQ R14, R12          \
	SHLQ $2, R12           \
loop:                          \
	PREFETCHT0 (R11)       \
	ADDQ       $64, R11    \
	SUBQ       $64, R12    \
	JGT        loop

// STORE4 folds the four rows' lanes and stores the sums at DI, moving DI
// on; then SI, R13, AX and CX, which have moved one row on, move on to the
// next four rows.
#define STORE4 \
	FOLD16(Z0, Y0, X0)      \
	FOLD16(Z1, Y1, X1)      \
	FOLD16(Z2, Y2, X2)      \
	FOLD16(Z3, Y3, X3)      \
	VMOVSS X0, (DI)         \
	VMOVSS X1, 4(DI)        \
	VMOVSS X2, 8(DI)        \
	VMOVSS X3, 12(DI)       \
	ADDQ   $16, DI          \
	LEAQ   (SI)(DX*2), SI   \
	ADDQ   DX, SI           \
	LEAQ   (R13)(DX*2), R13 \
	ADDQ   DX, R13          \
	LEAQ   (AX)(R14*2), AX  \
	ADDQ   R14, AX          \
	LEAQ   (CX)(R14*2), CX  \
	ADDQ   R14, CX

// int8Ones16 is sixteen int16 ones: VPMADDWD by it adds pairs of int16.
DATA int8Ones16<>+0(SB)/8, $0x0001000100010001
DATA int8Ones16<>+8(SB)/8, $0x0001000100010001
DATA int8Ones16<>+16(SB)/8, $0x0001000100010001
DATA int8Ones16<>+24(SB)/8, $0x0001000100010001
GLOBL int8Ones16<>(SB), RODATA|NOPTR, $32
