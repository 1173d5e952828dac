package kernels

import "github.com/golora/golora/internal/cpu"

// useAVX512 and useAVX2 select the kernels that are chosen without a
// cpu.Level argument (the exponential, argmax, SwiGLU, AttendCachedFast,
// gemv, panels, the low-rank terms); they are set once at start-up from the
// CPU features (capped by GOLORA_KERNELS) and never change. useAVX2 means
// AVX2 with FMA.
var (
	useAVX512 = cpu.Best() >= cpu.AVX512
	useAVX2   = cpu.Best() >= cpu.AVX2
	// hasF16C is whether the AVX2 binary16 kernels can run: they convert
	// with F16C's VCVTPH2PS, which AVX2 does not imply (AVX-512 does).
	hasF16C = cpu.HasF16C()
)

// vectorLevel is the level those kernels run at: AVX-512, else AVX2, else
// Generic (pure Go), for the kernels that take a level as an argument.
func vectorLevel() cpu.Level {
	switch {
	case useAVX512:
		return cpu.AVX512
	case useAVX2:
		return cpu.AVX2
	}
	return cpu.Generic
}
