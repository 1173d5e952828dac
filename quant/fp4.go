package quant

import "math"

// fp4Table is bitsandbytes' FP4 (E2M1, exponent bias 3, one subnormal) code
// list [0, 0.0625, 8, 12, 4, 6, 2, 3, −0, −0.0625, −8, −12, −4, −6, −2, −3]/12,
// each entry rounded once to float32. The sign is bit 3.
var fp4Table = func() *[16]float32 {
	mags := [8]float64{0, 0.0625, 8, 12, 4, 6, 2, 3}
	var t [16]float32
	for i, v := range mags {
		t[i] = float32(v / 12)
		t[i+8] = float32(-v / 12)
	}
	return &t
}()

// FP4Codebook returns the 16 values FP4 codes stand for, before scaling by the
// block absmax. Index 8 is −0.
func FP4Codebook() [16]float32 { return *fp4Table }

// FP4 is a weight quantized to bitsandbytes' 4-bit float (E2M1): per block a
// float32 absmax, per element a 4-bit code into FP4Codebook, two codes per
// byte with the first element in the high nibble (the NF4 packing). QLoRA
// keeps it as the float-based baseline that NF4 improves on.
type FP4 struct{ lut4 }

// QuantizeFP4 quantizes the row-major weight w of shape [rows, cols] to FP4
// with blockSize consecutive elements per absmax (32, 64, …, 4096; 64 is
// bitsandbytes' default). The last block may be partial.
//
// Elements are normalized by multiplying with the float32 reciprocal of their
// block's absmax, as bitsandbytes' kernels do, and rounded on |x|/absmax with
// the decision thresholds of its CUDA kernel (midpoints of adjacent codes; a
// value exactly on a threshold goes to the smaller magnitude). A negative
// value too small for the subnormal code gets −0 (code 8), as in that kernel.
// It returns an error for a bad shape, length or block size, or for a NaN or
// ±Inf weight.
func QuantizeFP4(w []float32, rows, cols, blockSize int) (*FP4, error) {
	m, err := newLut4(w, rows, cols, blockSize, fp4Table, "fp4", encodeFP4Block)
	if err != nil {
		return nil, err
	}
	return &FP4{m}, nil
}

func encodeFP4Block(dst []uint8, x []float32, absmax float32) {
	if absmax == 0 {
		clear(dst)
		return
	}
	inv := 1 / absmax
	// A subnormal absmax has no finite float32 reciprocal; dividing keeps the
	// block quantizable where bitsandbytes would saturate it.
	divide := math.IsInf(float64(inv), 1)
	for i, v := range x {
		s := v * inv
		if divide {
			s = v / absmax
		}
		dst[i] = fp4Code(s)
	}
}

// fp4Code maps a normalized value in [−1, 1] to its FP4 code.
func fp4Code(v float32) uint8 {
	var sign uint8
	if v < 0 {
		sign = 0b1000
	}
	a := abs32(v)
	// Thresholds are the float32 constants of bitsandbytes' dQuantizeFP4:
	// midpoints of adjacent codes, in units of the block absmax.
	switch {
	case a > 0.8333333: // (8+12)/24
		return sign | 0b0011 // 12/12
	case a > 0.583333: // (6+8)/24
		return sign | 0b0010 // 8/12
	case a > 0.4166667: // (4+6)/24
		return sign | 0b0101 // 6/12
	case a > 0.29166667: // (3+4)/24
		return sign | 0b0100 // 4/12
	case a > 0.20833333: // (2+3)/24
		return sign | 0b0111 // 3/12
	case a > 0.0859375: // (0.0625+2)/24
		return sign | 0b0110 // 2/12
	case a > 0.00260417: // 0.0625/24
		return sign | 0b0001 // 0.0625/12
	default:
		return sign
	}
}
