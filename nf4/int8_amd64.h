// Shared by int8dot_amd64.s and int8mat_amd64.s: the folds of an int8
// product's sixteen float32 lanes into one float32, in halves (j+8, j+4,
// j+2, j+1) as int8Fold adds them so that the kernels give the Go code's
// bits, and the AVX2 kernels' signed byte dot products.

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

// int8Ones16 is sixteen int16 ones: VPMADDWD by it adds pairs of int16.
DATA int8Ones16<>+0(SB)/8, $0x0001000100010001
DATA int8Ones16<>+8(SB)/8, $0x0001000100010001
DATA int8Ones16<>+16(SB)/8, $0x0001000100010001
DATA int8Ones16<>+24(SB)/8, $0x0001000100010001
GLOBL int8Ones16<>(SB), RODATA|NOPTR, $32
