// Package ggml holds frozen weights in ggml's block-quantized formats (Q8_0,
// Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) exactly as a GGUF
// file stores them, so QLoRA can train on a user's existing GGUF base with
// no second rounding.
//
// A Matrix keeps the raw blocks of a [rows, cols] weight — ggml's layout:
// each row is a contiguous run of blocks along the input dimension (ggml's
// ne0) — and implements quant.Matrix: DequantizeRows expands rows into a
// caller's buffer and MulT computes x·Wᵀ straight from the blocks. The
// dequantized values match ggml's own dequantization bit for bit.
//
// A loader wraps a tensor's raw blocks with New; quant.Matrix users need
// nothing else.
//
// Quantize (and QuantizeQ8_0, QuantizeQ4_K, … with quant.Quantizer's
// signature) follows ggml's reference, imatrix-free quantization and
// produces the same bytes, so the blocks of a matrix it returns can be
// written to a GGUF file that llama.cpp runs. It writes every format but
// Q2_K and Q3_K, which are read only.
package ggml

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/internal/parallel"
	"github.com/golora/golora/quant"
)

// Type is a ggml tensor type, numbered as ggml (and GGUF) number it.
type Type uint32

// The block formats this package reads.
const (
	Q4_0 Type = 2
	Q4_1 Type = 3
	Q5_0 Type = 6
	Q5_1 Type = 7
	Q8_0 Type = 8
	Q2_K Type = 10
	Q3_K Type = 11
	Q4_K Type = 12
	Q5_K Type = 13
	Q6_K Type = 14
)

// format describes one block format: its layout and its row kernels.
type format struct {
	name       string
	blockElems int
	blockBytes int
	// dequant writes len(dst) elements decoded from the whole blocks in row.
	dequant func(dst []float32, row []byte)
	// dot returns the dot product of the row decoded from the blocks with x.
	dot func(row []byte, x []float32) float32
	// scales lists the byte offsets, within a block, of the block's fp16
	// scales, which must be finite.
	scales []int
}

var formats = map[Type]*format{
	Q8_0: {"q8_0", 32, 34, dequantQ8_0, dotQ8_0, []int{0}},
	Q4_0: {"q4_0", 32, 18, dequantQ4_0, dotQ4_0, []int{0}},
	Q4_1: {"q4_1", 32, 20, dequantQ4_1, dotQ4_1, []int{0, 2}},
	Q2_K: {"q2_K", 256, 84, dequantQ2_K, dotQ2_K, []int{80, 82}},
	Q3_K: {"q3_K", 256, 110, dequantQ3_K, dotQ3_K, []int{108}},
	Q5_0: {"q5_0", 32, 22, dequantQ5_0, dotQ5_0, []int{0}},
	Q5_1: {"q5_1", 32, 24, dequantQ5_1, dotQ5_1, []int{0, 2}},
	Q4_K: {"q4_K", 256, 144, dequantQ4_K, dotQ4_K, []int{0, 2}},
	Q5_K: {"q5_K", 256, 176, dequantQ5_K, dotQ5_K, []int{0, 2}},
	Q6_K: {"q6_K", 256, 210, dequantQ6_K, dotQ6_K, []int{208}},
}

// typeList names the supported types in error messages.
const typeList = "q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K"

// String returns ggml's name of the type, e.g. "q4_K".
func (t Type) String() string {
	if f, ok := formats[t]; ok {
		return f.name
	}
	return fmt.Sprintf("ggml_type(%d)", uint32(t))
}

// ParseType returns the type named s, ggml's name in any letter case
// ("q4_K", "Q8_0", "q6_k").
func ParseType(s string) (Type, error) {
	for t, f := range formats {
		if strings.EqualFold(s, f.name) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("ggml: unknown type %q (have %s)", s, typeList)
}

// Supported reports whether this package reads the type.
func (t Type) Supported() bool {
	_, ok := formats[t]
	return ok
}

// BlockSize returns how many elements one block of the type holds and how
// many bytes it takes; ok is false for a type this package does not read.
func (t Type) BlockSize() (elems, bytes int, ok bool) {
	f, ok := formats[t]
	if !ok {
		return 0, 0, false
	}
	return f.blockElems, f.blockBytes, true
}

// RowBytes returns the bytes of one row of cols elements, or an error if the
// type is not supported or cols is not a positive multiple of its block size.
func (t Type) RowBytes(cols int) (int, error) {
	f, ok := formats[t]
	if !ok {
		return 0, fmt.Errorf("ggml type %v is not supported (have %s)", t, typeList)
	}
	if cols <= 0 || cols%f.blockElems != 0 {
		return 0, fmt.Errorf("%v row of %d elements is not a positive multiple of its block size %d", t, cols, f.blockElems)
	}
	return cols / f.blockElems * f.blockBytes, nil
}

// Matrix is a frozen [rows, cols] weight in one of ggml's block formats. It
// implements quant.Matrix. Its methods are safe for concurrent use.
type Matrix struct {
	name       string
	typ        Type
	f          *format
	rows, cols int
	rowBytes   int
	data       []byte
}

var _ quant.Matrix = (*Matrix)(nil)

// New wraps the raw ggml blocks data of the weight name, of type typ and
// shape [rows, cols] (PyTorch order: a GGUF tensor with dims [ne0, ne1] has
// cols = ne0 and rows = ne1). data must hold exactly rows·RowBytes(cols)
// bytes; it is used in place, not copied, so the caller keeps it alive and
// unmodified for the life of the Matrix (copy it first if it aliases a file
// mapping that will be closed). New reads every block's fp16 scales once and
// rejects one that is not finite, naming the tensor, row and block.
func New(name string, typ Type, rows, cols int, data []byte) (*Matrix, error) {
	f, ok := formats[typ]
	if !ok {
		return nil, fmt.Errorf("ggml: tensor %q: type %v is not supported (have %s)", name, typ, typeList)
	}
	if rows <= 0 || cols <= 0 {
		return nil, fmt.Errorf("ggml: tensor %q: shape [%d, %d]: rows and cols must be positive", name, rows, cols)
	}
	rowBytes, err := typ.RowBytes(cols)
	if err != nil {
		return nil, fmt.Errorf("ggml: tensor %q: %w", name, err)
	}
	if rows > math.MaxInt/rowBytes || rows > math.MaxInt/cols {
		return nil, fmt.Errorf("ggml: tensor %q: shape [%d, %d] overflows int", name, rows, cols)
	}
	if want := rows * rowBytes; len(data) != want {
		return nil, fmt.Errorf("ggml: tensor %q: %d bytes of %v data, shape [%d, %d] needs %d", name, len(data), typ, rows, cols, want)
	}
	m := &Matrix{name: name, typ: typ, f: f, rows: rows, cols: cols, rowBytes: rowBytes, data: data}
	if err := m.checkScales(); err != nil {
		return nil, err
	}
	return m, nil
}

// errNonFinite marks a block scale that is Inf or NaN.
var errNonFinite = errors.New("scale is not finite")

func (m *Matrix) checkScales() error {
	const expMask = 0x7c00 // an fp16 with all exponent bits set is Inf or NaN
	blocksPerRow := m.rowBytes / m.f.blockBytes
	for b := 0; b*m.f.blockBytes < len(m.data); b++ {
		blk := m.data[b*m.f.blockBytes:]
		for _, off := range m.f.scales {
			if h := uint16(blk[off]) | uint16(blk[off+1])<<8; h&expMask == expMask {
				return fmt.Errorf("ggml: tensor %q (%v): row %d, block %d: fp16 %#04x at block byte %d: %w",
					m.name, m.typ, b/blocksPerRow, b%blocksPerRow, h, off, errNonFinite)
			}
		}
	}
	return nil
}

// Name returns the tensor name given to New, used in error messages.
func (m *Matrix) Name() string { return m.name }

// Type returns the ggml block format.
func (m *Matrix) Type() Type { return m.typ }

// Dims returns the logical shape [rows, cols].
func (m *Matrix) Dims() (rows, cols int) { return m.rows, m.cols }

// Format returns ggml's name of the block format, e.g. "q4_K".
func (m *Matrix) Format() string { return m.f.name }

// Blocks returns the raw ggml blocks, row after row, as a GGUF tensor of the
// matrix's type stores them (dims [cols, rows]). The slice aliases the
// matrix: do not modify it.
func (m *Matrix) Blocks() []byte { return m.data[:len(m.data):len(m.data)] }

// StorageBytes returns the bytes of the blocks: codes and all scales.
func (m *Matrix) StorageBytes() int64 { return int64(len(m.data)) }

// BitsPerParam returns 8·StorageBytes / (rows·cols), e.g. 8.5 for q8_0 and
// 4.5 for q4_K.
func (m *Matrix) BitsPerParam() float64 {
	return 8 * float64(m.StorageBytes()) / float64(m.rows*m.cols)
}

// DequantizeRows writes rows [start, end) into dst[:(end-start)*cols],
// bit-identical to ggml's dequantization. It does not allocate.
func (m *Matrix) DequantizeRows(dst []float32, start, end int) error {
	if start < 0 || end > m.rows || start > end {
		return fmt.Errorf("ggml: tensor %q: row range [%d, %d) out of bounds for %d rows", m.name, start, end, m.rows)
	}
	if need := (end - start) * m.cols; len(dst) < need {
		return fmt.Errorf("ggml: tensor %q: destination has %d elements, rows [%d, %d) of %d columns need %d", m.name, len(dst), start, end, m.cols, need)
	}
	for r := start; r < end; r++ {
		m.f.dequant(dst[(r-start)*m.cols:(r-start+1)*m.cols], m.data[r*m.rowBytes:(r+1)*m.rowBytes])
	}
	return nil
}

// mulTChunk is the least number of multiply-adds worth a goroutine.
const mulTChunk = 1 << 16

// MulT computes y = x·Wᵀ for n rows of x ([n, cols] → [n, rows]). For a
// few rows of x (generation) it runs fused kernels straight from the blocks;
// for more it expands each row of W once into a scratch row, unless the
// CPU runs the vector fused kernels (AVX2), which are faster for any n.
// Rows of W are split across CPUs when the product is large. Sums are in
// float32, so results differ from DequantizeRows followed by a dot product
// by rounding only (and, for n of mulTExpandMin or more, in the last bits
// between CPUs with and without the vector kernels, which sum in another
// order than the expanded rows).
func (m *Matrix) MulT(y, x []float32, n int) error {
	if err := m.checkMulT("MulT", y, x, n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	parallel.For(m.rows, max(1, mulTChunk/(n*m.cols)), 1, func(lo, hi int) {
		if n < mulTExpandMin || vectorDot() {
			m.fusedRows(y, x, n, lo, hi)
			return
		}
		// With many rows of x, decoding a row of W once and reusing it for
		// every x beats decoding it n times inside the fused kernel.
		w := make([]float32, m.cols)
		for r := lo; r < hi; r++ {
			m.f.dequant(w, m.data[r*m.rowBytes:(r+1)*m.rowBytes])
			for i := range n {
				y[i*m.rows+r] = kernels.Dot(w, x[i*m.cols:(i+1)*m.cols])
			}
		}
	})
	return nil
}

// MulTRows computes the entries of y = x·Wᵀ that rows [start, end) of W
// give, y[i, start:end] for every row i of x ([n, cols]; y is [n, rows] and
// its other entries are left alone), with the fused kernels straight from
// the blocks (MulT's bits for fewer than mulTExpandMin = 4 rows of x, or
// any number where MulT runs the vector kernels). It runs on the calling
// goroutine and does not allocate, so that a caller with workers of its own
// (a decode step) can split a product by rows of W.
func (m *Matrix) MulTRows(y, x []float32, n, start, end int) error {
	if start < 0 || end > m.rows || start > end {
		return fmt.Errorf("ggml: tensor %q: MulTRows: row range [%d, %d) out of bounds for %d rows", m.name, start, end, m.rows)
	}
	if err := m.checkMulT("MulTRows", y, x, n); err != nil {
		return err
	}
	m.fusedRows(y, x, n, start, end)
	return nil
}

// checkMulT checks the row count n and the lengths of x ([n, cols]) and y
// ([n, rows]) for the product op.
func (m *Matrix) checkMulT(op string, y, x []float32, n int) error {
	if n < 0 || n > math.MaxInt/max(m.rows, m.cols) {
		return fmt.Errorf("ggml: tensor %q: %s: row count %d out of range", m.name, op, n)
	}
	if len(x) != n*m.cols {
		return fmt.Errorf("ggml: tensor %q: %s: x has %d elements, want n·cols = %d·%d = %d", m.name, op, len(x), n, m.cols, n*m.cols)
	}
	if len(y) != n*m.rows {
		return fmt.Errorf("ggml: tensor %q: %s: y has %d elements, want n·rows = %d·%d = %d", m.name, op, len(y), n, m.rows, n*m.rows)
	}
	return nil
}

// fusedRows sets y[i, start:end] for the n rows of x with the fused kernels,
// a chunk of rows of W at a time, each chunk for every row of x while it is
// in cache.
func (m *Matrix) fusedRows(y, x []float32, n, start, end int) {
	if half := (end - start) / 2; half > 0 && paired(m.typ) {
		m.pairedRows(y, x, n, start, end, half)
		return
	}
	chunk := max(1, fusedRowsChunk/m.cols)
	for r0 := start; r0 < end; r0 += chunk {
		r1 := min(end, r0+chunk)
		w := m.data[r0*m.rowBytes : r1*m.rowBytes]
		for i := range n {
			dotRows(m.typ, m.f, y[i*m.rows+r0:i*m.rows+r1], w, x[i*m.cols:(i+1)*m.cols])
		}
	}
}

// pairedRows is fusedRows with the kernels that take two rows at a time:
// row r with row r+half, a chunk of pairs a call, so that W is read as two
// long runs in order. Two rows next to each other, or half a chunk apart,
// interleave short runs that the hardware prefetcher does not follow: such
// kernels ran up to 3 times slower than one row at a time on weights read
// from memory.
func (m *Matrix) pairedRows(y, x []float32, n, start, end, half int) {
	chunk := max(1, fusedRowsChunk/m.cols/2)
	for r0 := start; r0 < start+half; r0 += chunk {
		r1 := min(start+half, r0+chunk)
		w := m.data[r0*m.rowBytes : (r1+half)*m.rowBytes]
		for i := range n {
			dotRowPairs(m.typ, m.f, y[i*m.rows+r0:i*m.rows+r1+half], w, x[i*m.cols:(i+1)*m.cols], r1-r0, half)
		}
	}
	if r := start + 2*half; r < end {
		for i := range n {
			dotRows(m.typ, m.f, y[i*m.rows+r:i*m.rows+r+1], m.data[r*m.rowBytes:(r+1)*m.rowBytes], x[i*m.cols:(i+1)*m.cols])
		}
	}
}

// fusedRowsChunk is the most elements of W one dotRows call covers: a few
// microseconds of assembly, which is not preemptible, and a chunk of W that
// stays in cache for the next row of x.
const fusedRowsChunk = 1 << 14

// mulTExpandMin is the number of rows of x from which MulT expands each row
// of W to float32 once instead of running the Go fused kernel per row of x
// (BenchmarkMulTBatch with GOLORA_KERNELS=generic; the vector kernels beat
// expanding at any n, 4-6 times at n = 32).
const mulTExpandMin = 4
