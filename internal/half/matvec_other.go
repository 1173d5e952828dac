//go:build !amd64

package half

import "github.com/golora/golora/internal/cpu"

// Without amd64 assembly cpu.Best() is always cpu.Generic; l is ignored.
func matVecAt(_ cpu.Level, f16 bool, y, x []float32, w []uint16) {
	matVecGeneric(f16, y, x, w[:len(y)*len(x)])
}

// finite16 reports whether no value of src has all the exponent bits exp
// set, one value at a time (finiteLE's test) as the byte order is unknown.
func finite16(src []uint16, exp uint16) bool {
	carry := exp & -exp
	var acc uint16
	for _, v := range src {
		acc |= v&exp + carry
	}
	return acc&0x8000 == 0
}

func widenAt(_ cpu.Level, f16 bool, dst []float32, src []uint16) {
	for i, h := range src {
		dst[i] = widen16(f16, h)
	}
}
