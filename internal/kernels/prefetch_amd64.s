#include "textflag.h"

// func prefetch(p unsafe.Pointer, lines int)
//
// One PREFETCHT0 per 64-byte line; a prefetch never faults, so the last
// line may run past the slice.
TEXT ·prefetch(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), SI
	MOVQ lines+8(FP), CX

line:
	PREFETCHT0 (SI)
	ADDQ       $64, SI
	DECQ       CX
	JNZ        line
	RET
