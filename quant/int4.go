package quant

import "math"

// int4Table holds the 16 evenly spaced levels −1 + 2k/15, k = 0..15, each
// rounded once to float32.
var int4Table = func() *[16]float32 {
	var t [16]float32
	for k := range t {
		t[k] = float32(-1 + 2*float64(k)/15)
	}
	return &t
}()

// Int4Levels returns the 16 levels Int4 codes stand for, before scaling by
// the block absmax: −1, −13/15, …, 13/15, 1. There is no zero level.
func Int4Levels() [16]float32 { return *int4Table }

// Int4 is a weight quantized to uniform 4-bit levels: per block a float32
// absmax, per element the index of the nearest of 16 levels evenly spaced in
// [−1, 1], packed like NF4 and FP4. It is the naive scheme that QLoRA's "Int4"
// row stands for; with an even number of levels it cannot represent zero.
type Int4 struct{ lut4 }

// QuantizeInt4 quantizes the row-major weight w of shape [rows, cols] to Int4
// with blockSize consecutive elements per absmax (32, 64, …, 4096). Each
// element x goes to the level nearest x/absmax; a value exactly halfway
// between two levels goes to the lower one. It returns an error for a bad
// shape, length or block size, or for a NaN or ±Inf weight.
func QuantizeInt4(w []float32, rows, cols, blockSize int) (*Int4, error) {
	m, err := newLut4(w, rows, cols, blockSize, int4Table, "int4", encodeInt4Block)
	if err != nil {
		return nil, err
	}
	return &Int4{m}, nil
}

func encodeInt4Block(dst []uint8, x []float32, absmax float32) {
	if absmax == 0 {
		// Any level times a zero absmax is zero; the one above the midpoint
		// gives +0 rather than −0.
		for i := range dst {
			dst[i] = 8
		}
		return
	}
	for i, v := range x {
		// Position on the level grid, where level k sits at t = k. v·7.5 is
		// exact in float64, so an exact midpoint stays one after the division.
		t := float64(v)*7.5/float64(absmax) + 7.5
		k := math.Ceil(t - 0.5)
		dst[i] = uint8(min(max(k, 0), 15))
	}
}
