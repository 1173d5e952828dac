package nf4

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/golora/golora/quant"
)

// Parts are the arrays an NF4 matrix is stored as: the tensors bitsandbytes
// serializes for a 4-bit weight. Exactly one of Absmax (plain) and
// QuantAbsmax (double quantization) is set.
type Parts struct {
	Rows, Cols int
	BlockSize  int
	// Packed holds (Rows·Cols+1)/2 bytes: element 2i in the high nibble of
	// byte i, element 2i+1 in the low nibble.
	Packed []byte
	// Absmax holds one float32 scale per block without double quantization.
	Absmax []float32

	// QuantAbsmax holds one 8-bit index into NestedCode per block with
	// double quantization: absmax[b] =
	// NestedCode[QuantAbsmax[b]]·NestedAbsmax[b/NestedBlockSize] + Offset.
	QuantAbsmax  []uint8
	NestedAbsmax []float32
	// NestedCode is the 256-entry map the absmax indices point into; nil
	// means quant.DynamicMap(true, 7, 8), the map bitsandbytes uses.
	NestedCode []float32
	// NestedBlockSize is the number of blocks per NestedAbsmax; 0 means 256.
	NestedBlockSize int
	Offset          float32

	// DType is the element type bitsandbytes records for the weight before
	// quantization ("float32", "float16" or "bfloat16"); bitsandbytes
	// dequantizes to it. Empty means "float32".
	DType string
}

// Parts returns the arrays of m. The slices are m's own: they must not be
// modified.
func (m *Matrix) Parts() Parts {
	p := Parts{
		Rows:      m.rows,
		Cols:      m.cols,
		BlockSize: m.blockSize,
		Packed:    m.packed,
		Absmax:    m.absmax,
		DType:     m.dtype,
	}
	if dq := m.dq; dq != nil {
		p.QuantAbsmax = dq.codes
		p.NestedAbsmax = dq.nested
		p.NestedCode = dq.code
		p.NestedBlockSize = dq.blockSize
		p.Offset = dq.offset
	}
	return p
}

// FromParts builds a matrix from its stored arrays, checking every length
// against the shape and block sizes, and that every scale is finite (and,
// without double quantization, not negative). The matrix keeps the slices of
// p: they must not be modified afterwards.
func FromParts(p Parts) (*Matrix, error) {
	n, err := checkDims(p.Rows, p.Cols)
	if err != nil {
		return nil, err
	}
	if err := checkBlockSize(p.BlockSize); err != nil {
		return nil, err
	}
	if len(p.Packed) != (n+1)/2 {
		return nil, fmt.Errorf("nf4: %d packed bytes, shape [%d, %d] needs %d", len(p.Packed), p.Rows, p.Cols, (n+1)/2)
	}
	switch p.DType {
	case "":
		p.DType = "float32"
	case "float32", "float16", "bfloat16":
	default:
		return nil, fmt.Errorf("nf4: dtype %q: want float32, float16 or bfloat16", p.DType)
	}
	nb := quant.NumBlocks(n, p.BlockSize)
	m := &Matrix{
		rows:       p.Rows,
		cols:       p.Cols,
		blockSize:  p.BlockSize,
		blockShift: uint(bits.TrailingZeros(uint(p.BlockSize))),
		packed:     p.Packed,
		dtype:      p.DType,
	}
	switch {
	case p.Absmax != nil && p.QuantAbsmax != nil:
		return nil, fmt.Errorf("nf4: both a float32 and a quantized absmax given")
	case p.Absmax != nil:
		if len(p.Absmax) != nb {
			return nil, fmt.Errorf("nf4: %d absmax values, %d elements in blocks of %d need %d", len(p.Absmax), n, p.BlockSize, nb)
		}
		for b, a := range p.Absmax {
			if !finite(a) || a < 0 {
				return nil, fmt.Errorf("nf4: absmax of block %d is %v: want a finite value ≥ 0", b, a)
			}
		}
		m.absmax = p.Absmax
		return m, nil
	case p.QuantAbsmax == nil:
		return nil, fmt.Errorf("nf4: no absmax given")
	}
	dq, err := doubleQuantFromParts(p, nb)
	if err != nil {
		return nil, err
	}
	m.dq = dq
	for b := range nb {
		if a := m.scale(b); !finite(a) {
			return nil, fmt.Errorf("nf4: absmax of block %d decodes to %v", b, a)
		}
	}
	return m, nil
}

// doubleQuantFromParts validates the double-quantization arrays of p for nb
// blocks.
func doubleQuantFromParts(p Parts, nb int) (*doubleQuant, error) {
	nbs := p.NestedBlockSize
	if nbs == 0 {
		nbs = NestedBlockSize
	}
	if err := quant.ValidateBlockSize(nbs); err != nil {
		return nil, fmt.Errorf("nf4: nested block size: %w", err)
	}
	if len(p.QuantAbsmax) != nb {
		return nil, fmt.Errorf("nf4: %d quantized absmax values, %d blocks need %d", len(p.QuantAbsmax), nb, nb)
	}
	if want := quant.NumBlocks(nb, nbs); len(p.NestedAbsmax) != want {
		return nil, fmt.Errorf("nf4: %d nested absmax values, %d blocks in nested blocks of %d need %d",
			len(p.NestedAbsmax), nb, nbs, want)
	}
	for i, a := range p.NestedAbsmax {
		if !finite(a) || a < 0 {
			return nil, fmt.Errorf("nf4: nested absmax %d is %v: want a finite value ≥ 0", i, a)
		}
	}
	code := p.NestedCode
	if code == nil {
		code = quant.DynamicMap(true, 7, 8)
	}
	if len(code) != 256 {
		return nil, fmt.Errorf("nf4: nested code has %d values, want 256", len(code))
	}
	for i, c := range code {
		if !finite(c) {
			return nil, fmt.Errorf("nf4: nested code value %d is %v", i, c)
		}
	}
	if !finite(p.Offset) {
		return nil, fmt.Errorf("nf4: nested offset is %v", p.Offset)
	}
	return newDoubleQuant(p.QuantAbsmax, p.NestedAbsmax, code, p.Offset, nbs), nil
}

func finite(v float32) bool {
	return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0)
}
