// Package cpu tells golora's kernels which instruction set to run: the best
// one this CPU supports, optionally capped by the GOLORA_KERNELS environment
// variable so that tests and benchmarks can run every code path on one
// machine and compare each with the pure-Go code.
//
// GOLORA_KERNELS takes "generic" (pure Go), "avx2" (AVX2 with FMA) or
// "avx512" (AVX-512 F/BW/DQ/VL). It can only lower the level: asking for
// AVX-512 on a CPU without it gives the best level the CPU has.
package cpu

import (
	"fmt"
	"os"

	"golang.org/x/sys/cpu"
)

// Level is an instruction-set level a kernel is written for.
type Level int

// The levels, in increasing order of capability.
const (
	Generic Level = iota // pure Go, any CPU
	AVX2                 // x86-64 AVX2 with FMA3
	AVX512               // x86-64 AVX-512 F, BW, DQ and VL
)

// EnvVar is the environment variable that caps the level.
const EnvVar = "GOLORA_KERNELS"

var names = [...]string{Generic: "generic", AVX2: "avx2", AVX512: "avx512"}

// String returns the level's name as GOLORA_KERNELS spells it.
func (l Level) String() string {
	if l < 0 || int(l) >= len(names) {
		return fmt.Sprintf("Level(%d)", int(l))
	}
	return names[l]
}

// ParseLevel reads a level name as GOLORA_KERNELS spells it.
func ParseLevel(s string) (Level, error) {
	for l, n := range names {
		if s == n {
			return Level(l), nil
		}
	}
	return Generic, fmt.Errorf("cpu: unknown kernel level %q (want generic, avx2 or avx512)", s)
}

// Supported returns the best level this CPU and operating system support,
// ignoring GOLORA_KERNELS.
func Supported() Level {
	switch {
	case cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL:
		return AVX512
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return AVX2
	default:
		return Generic
	}
}

// best is computed once: the CPU does not change while the program runs, and
// kernels choose their code path from it on every call.
var best = capped(Supported(), os.Getenv(EnvVar))

// Best returns the level kernels should use: Supported, capped by
// GOLORA_KERNELS when it is set. An unrecognized value is ignored (the
// program still runs at the supported level); kernels' tests check it with
// ParseLevel so that a typo in CI does not go unnoticed.
func Best() Level { return best }

func capped(supported Level, env string) Level {
	if env == "" {
		return supported
	}
	want, err := ParseLevel(env)
	if err != nil || want > supported {
		return supported
	}
	return want
}

// HasAVX512VNNI reports whether the CPU has AVX-512 VNNI (VPDPBUSD, integer
// dot products of bytes). It says nothing about the level: kernels that use
// it check Best() ≥ AVX512 too, so GOLORA_KERNELS still caps them.
func HasAVX512VNNI() bool { return cpu.X86.HasAVX512VNNI }

// HasAVX512VBMI reports whether the CPU has AVX-512 VBMI (VPERMB, byte
// permutes across a whole register). Like HasAVX512VNNI, it says nothing
// about the level.
func HasAVX512VBMI() bool { return cpu.X86.HasAVX512VBMI }

// HasF16C reports whether the CPU has F16C (VCVTPH2PS, binary16 to float32
// conversion). AVX-512 implies it; an AVX2 CPU nearly always has it, but
// nothing guarantees it, so AVX2 kernels that convert with it check.
func HasF16C() bool { return cpu.X86.HasF16C }
