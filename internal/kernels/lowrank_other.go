//go:build !amd64

package kernels

import "github.com/golora/golora/internal/cpu"

// lowRankLevel is Generic: there is no assembly for this architecture, and
// so shrinkAsm, expandAsm and f16ToFloat32sAsm are never called.
func lowRankLevel(bool) cpu.Level { return cpu.Generic }

func shrinkAsm(_ cpu.Level, s, x, a []float32, a16 []uint16, scale float32) {
	shrink(cpu.Generic, s, x, a, a16, scale)
}

func expandAsm(_ cpu.Level, y, s, bt []float32, bt16 []uint16, ld int) {
	expand(cpu.Generic, y, s, bt, bt16, ld)
}

func f16ToFloat32sAsm(_ cpu.Level, dst []float32, src []uint16) {
	f16ToFloat32s(cpu.Generic, dst, src)
}
