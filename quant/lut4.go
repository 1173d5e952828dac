package quant

import "fmt"

// lut4 is a blockwise 4-bit format whose codes index a table of 16 values in
// [−1, 1], scaled by a float32 absmax per block of consecutive elements of the
// row-major weight. FP4 and Int4 differ only in their table and rounding.
//
// Packing follows bitsandbytes' NF4/FP4 layout: byte i holds element 2i in its
// high nibble and element 2i+1 in its low nibble; an odd last element is
// padded with a zero nibble.
type lut4 struct {
	rows, cols, blockSize int
	packed                []byte
	absmax                []float32
	table                 *[16]float32
	format                string
}

// newLut4 quantizes w block by block: encode writes one code per element of a
// block given the block's absmax.
func newLut4(w []float32, rows, cols, blockSize int, table *[16]float32, format string,
	encode func(dst []uint8, x []float32, absmax float32)) (lut4, error) {
	if err := checkShape(w, rows, cols, blockSize); err != nil {
		return lut4{}, fmt.Errorf("quant: %s: %w", format, err)
	}
	m := lut4{
		rows:      rows,
		cols:      cols,
		blockSize: blockSize,
		packed:    make([]byte, (len(w)+1)/2),
		absmax:    make([]float32, NumBlocks(len(w), blockSize)),
		table:     table,
		format:    format,
	}
	if err := blockAbsmax(m.absmax, w, blockSize); err != nil {
		return lut4{}, fmt.Errorf("quant: %s: %w", format, err)
	}
	codes := make([]uint8, blockSize)
	for b, s := range m.absmax {
		lo := b * blockSize
		x := w[lo:min(lo+blockSize, len(w))]
		c := codes[:len(x)]
		encode(c, x, s)
		// Blocks hold an even number of elements (block sizes are powers of
		// two ≥ 32), so every block starts on a byte boundary.
		out := m.packed[lo/2:]
		for i := 0; i+1 < len(c); i += 2 {
			out[i/2] = c[i]<<4 | c[i+1]
		}
		if len(c)%2 == 1 {
			out[len(c)/2] = c[len(c)-1] << 4
		}
	}
	return m, nil
}

// code returns the 4-bit code of flat element e.
func (m *lut4) code(e int) uint8 {
	return m.packed[e>>1] >> ((^e & 1) << 2) & 0x0f
}

// Dims returns the logical shape [rows, cols].
func (m *lut4) Dims() (rows, cols int) { return m.rows, m.cols }

// BlockSize returns the number of consecutive elements sharing one absmax.
func (m *lut4) BlockSize() int { return m.blockSize }

// Format names the format.
func (m *lut4) Format() string { return m.format }

// StorageBytes returns the bytes of packed codes plus 4 bytes per block absmax.
func (m *lut4) StorageBytes() int64 {
	return int64(len(m.packed)) + 4*int64(len(m.absmax))
}

// BitsPerParam returns 8·StorageBytes / (rows·cols).
func (m *lut4) BitsPerParam() float64 {
	return 8 * float64(m.StorageBytes()) / float64(m.rows*m.cols)
}

// DequantizeRows writes rows [start, end) into dst[:(end-start)*cols] as
// table[code]·absmax in float32. It does not allocate.
func (m *lut4) DequantizeRows(dst []float32, start, end int) error {
	if err := checkRows(dst, start, end, m.rows, m.cols); err != nil {
		return fmt.Errorf("quant: %s: %w", m.format, err)
	}
	e0, e1 := start*m.cols, end*m.cols
	out := dst[:e1-e0]
	for e := e0; e < e1; {
		b := e / m.blockSize
		hi := min((b+1)*m.blockSize, e1)
		s := m.absmax[b]
		for ; e < hi; e++ {
			out[e-e0] = m.table[m.code(e)] * s
		}
	}
	return nil
}

// MulT computes y = x·Wᵀ straight from the codes: each block's dot product
// with x is summed in float64 over table values and scaled by its absmax once.
func (m *lut4) MulT(y, x []float32, n int) error {
	if err := checkMulT(y, x, n, m.rows, m.cols); err != nil {
		return fmt.Errorf("quant: %s: %w", m.format, err)
	}
	for r := range m.rows {
		e0, e1 := r*m.cols, (r+1)*m.cols
		for i := range n {
			xi := x[i*m.cols : (i+1)*m.cols]
			var acc float64
			for e := e0; e < e1; {
				b := e / m.blockSize
				hi := min((b+1)*m.blockSize, e1)
				var dot float64
				for ; e < hi; e++ {
					dot += float64(xi[e-e0]) * float64(m.table[m.code(e)])
				}
				acc += dot * float64(m.absmax[b])
			}
			y[i*m.rows+r] = float32(acc)
		}
	}
	return nil
}
