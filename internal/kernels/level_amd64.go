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
)
