// Shared by int8dot_amd64.s and int8mat_amd64.s: the folds of an int8
// product's sixteen float32 lanes into one float32, in halves (j+8, j+4,
// j+2, j+1) as int8Fold adds them so that the kernels give the Go code's
// bits, and the int16 ones of the AVX2 kernels.

// FOLD16(z, y, x) leaves lane 0 + … + lane 15 of z in x (y its low half);
// it uses Z10.
#define FOLD16(z, y, x) \
	VEXTRACTF64X4 $1, z, Y10 \
	VADDPS        Y10, y, y  \
	VEXTRACTF128  $1, y, X10 \
	VADDPS        X10, x, x  \
	VMOVHLPS      x, x, X10  \
	VADDPS        X10, x, x  \
	VMOVSHDUP     x, X10     \
	VADDSS        X10, x, x

// FOLD8X2 is FOLD16 with AVX2, lanes 0–7 in Y0 and 8–15 in Y1: it leaves
// their sum in X0 and uses Y1.
#define FOLD8X2 \
	VADDPS       Y1, Y0, Y0 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVHLPS     X0, X0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVSHDUP    X0, X1     \
	VADDSS       X1, X0, X0

// int8Ones16 is sixteen int16 ones: VPMADDWD by it adds pairs of int16.
DATA int8Ones16<>+0(SB)/8, $0x0001000100010001
DATA int8Ones16<>+8(SB)/8, $0x0001000100010001
DATA int8Ones16<>+16(SB)/8, $0x0001000100010001
DATA int8Ones16<>+24(SB)/8, $0x0001000100010001
GLOBL int8Ones16<>(SB), RODATA|NOPTR, $32
