// Horizontal sums of the accumulator in Z0 or Y0 into X0's low lane, the
// lanes folded in halves (as dot16 and int8DotGeneric add them), so the bits
// equal the Go code's. Both clobber X1 (HSUM16 also Y1).

// HSUM8 adds the eight lanes of Y0.
#define HSUM8 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVHLPS     X0, X0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVSHDUP    X0, X1     \
	VADDSS       X1, X0, X0

// HSUM16 adds the sixteen lanes of Z0.
#define HSUM16 \
	VEXTRACTF32X8 $1, Z0, Y1 \
	VADDPS        Y1, Y0, Y0 \
	HSUM8
