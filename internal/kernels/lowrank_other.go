//go:build !amd64

package kernels

func lowRankShrinkVec(s, x, a []float32, a16 []uint16, in int, scale float32) bool { return false }

func lowRankExpandVec(y, s, bt []float32, bt16 []uint16, ld int) int { return 0 }

func f16ToFloat32sVec(dst []float32, src []uint16) int { return 0 }
