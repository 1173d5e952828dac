// Package nf4 implements the 4-bit NormalFloat (NF4) weight format of QLoRA
// as bitsandbytes stores it: a fixed 16-value codebook, one float32 absmax per
// block of consecutive weights, two codes per byte, and optionally the absmax
// itself quantized to 8 bits ("double quantization").
//
// A *Matrix is a frozen weight of shape [rows, cols] (PyTorch's [out, in]); it
// implements quant.Matrix, so the model runs on it without ever holding the
// whole float32 matrix: DequantizeRows decodes a range of rows, MulT computes
// x·Wᵀ straight from the codes. On amd64 both run AVX-512 or AVX2 assembly
// when the CPU has it (internal/cpu chooses; GOLORA_KERNELS caps the level),
// with results bit for bit the same as the portable code's.
//
// MulVecInt8Rows is the approximate product of llama.cpp's 4-bit formats
// for a decode step: the vector quantized to int8 once (Int8Vector), the
// NF4 levels to int8, integer dot products (AVX-512 VNNI or AVX2).
package nf4

import (
	"fmt"
	"math"
	"math/bits"
	"sync"
	"weak"

	"github.com/golora/golora/internal/hugemem"
	"github.com/golora/golora/quant"
)

// codebook is the NF4 code list of bitsandbytes (get_4bit_type("nf4") in
// bitsandbytes/functional.py, derived by create_normal_map(0.9677083, true)):
// index 0..15, ascending, exact 0 at index 7.
var codebook = [16]float32{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// midpoints are the decision thresholds between adjacent codes, as the
// float32 literals of bitsandbytes' dQuantizeNF4 (csrc/kernels.cu): a
// normalized weight v gets the code of the number of midpoints below it, so a
// value exactly on a midpoint goes to the lower code. Entry 15 is a sentinel
// that keeps vector lookups in range; no search reads it.
var midpoints = [16]float32{
	-0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
	-0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
	0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
	0.5016634166240692, 0.6427869200706482, 0.8614784181118011, float32(math.Inf(1)),
}

// zeroCode is the code of 0.0, used for every element of an all-zero block.
const zeroCode = 7

// Codebook returns the 16 NF4 values, index = code.
func Codebook() [16]float32 { return codebook }

// Midpoints returns the 15 thresholds between adjacent codes: code k covers
// normalized values in (Midpoints[k-1], Midpoints[k]].
func Midpoints() [15]float32 { return [15]float32(midpoints[:15]) }

// Block sizes bitsandbytes accepts for 4-bit quantization.
const (
	DefaultBlockSize = 64
	MinBlockSize     = 32
	MaxBlockSize     = 4096
)

// NestedBlockSize is the block size bitsandbytes uses to quantize the absmax
// values in double quantization.
const NestedBlockSize = 256

// Options choose how Quantize stores a matrix. The zero value is QLoRA's
// setting: blocks of 64 and double quantization on.
type Options struct {
	// BlockSize is the number of consecutive weights sharing one absmax: a
	// power of two from 32 to 4096; 0 means 64.
	BlockSize int
	// DisableDoubleQuant keeps the absmax in float32 instead of quantizing it
	// to 8 bits (4.5 instead of about 4.127 bits per weight at block 64).
	DisableDoubleQuant bool
}

// Matrix is an NF4-quantized [rows, cols] weight. It is immutable and safe
// for concurrent use.
type Matrix struct {
	rows, cols int
	blockSize  int
	blockShift uint
	packed     []byte    // (rows·cols+1)/2 bytes; element 2i in the high nibble of byte i
	absmax     []float32 // one per block; nil with double quantization
	dq         *doubleQuant
	dtype      string // the weight's dtype before quantization, for bitsandbytes
}

// doubleQuant holds the 8-bit quantized absmax of bitsandbytes'
// compress_statistics: absmax[b] = code[codes[b]]·nested[b/blockSize] + offset.
type doubleQuant struct {
	codes     []uint8
	nested    []float32
	code      []float32 // 256 entries
	offset    float32
	blockSize int
	shift     uint
	// planes[p][c] is byte p (little-endian) of code[c]: the table as
	// the VBMI scale decoder looks it up.
	planes [4][256]byte
}

// newDoubleQuant returns the double quantization of these parts, with its
// code table's byte planes.
func newDoubleQuant(codes []uint8, nested, code []float32, offset float32, blockSize int) *doubleQuant {
	dq := &doubleQuant{
		codes:     codes,
		nested:    nested,
		code:      code,
		offset:    offset,
		blockSize: blockSize,
		shift:     uint(bits.TrailingZeros(uint(blockSize))),
	}
	for c, v := range code {
		b := math.Float32bits(v)
		for p := range dq.planes {
			dq.planes[p][c] = byte(b >> (8 * p))
		}
	}
	return dq
}

var _ quant.Matrix = (*Matrix)(nil)

// checkBlockSize validates an NF4 block size.
func checkBlockSize(blockSize int) error {
	if err := quant.ValidateBlockSize(blockSize); err != nil {
		return fmt.Errorf("nf4: block size: %w", err)
	}
	return nil
}

// checkDims validates a shape and returns rows·cols.
func checkDims(rows, cols int) (int, error) {
	if rows <= 0 || cols <= 0 {
		return 0, fmt.Errorf("nf4: shape [%d, %d]: rows and cols must be positive", rows, cols)
	}
	// A float32 copy of the matrix must be addressable in bytes.
	if rows > math.MaxInt/8/cols {
		return 0, fmt.Errorf("nf4: shape [%d, %d] is too large", rows, cols)
	}
	return rows * cols, nil
}

// Quantizer returns a quant.Quantizer running Quantize with opts, for
// model's Weights.Quantize and quant.Compare.
func Quantizer(opts Options) quant.Quantizer {
	return func(w []float32, rows, cols int) (quant.Matrix, error) {
		m, err := Quantize(w, rows, cols, opts)
		if err != nil {
			return nil, err
		}
		return m, nil
	}
}

// Quantize quantizes the row-major weight w of shape [rows, cols] to NF4,
// blockwise over the flattened weight as bitsandbytes' quantize_4bit does:
// absmax = max|w| per block (the last block may be partial), each weight
// divided by its block's absmax goes to the nearest code (ties to the lower
// code), two codes per byte. With double quantization (the default) the
// absmax values are then quantized as bitsandbytes' compress_statistics does.
//
// It returns an error for a bad shape or block size, and an error wrapping
// quant.ErrNonFinite naming the block, row and column of the first NaN or ±Inf.
func Quantize(w []float32, rows, cols int, opts Options) (*Matrix, error) {
	n, err := checkDims(rows, cols)
	if err != nil {
		return nil, err
	}
	if len(w) != n {
		return nil, fmt.Errorf("nf4: weight has %d elements, shape [%d, %d] needs %d", len(w), rows, cols, n)
	}
	blockSize := opts.BlockSize
	if blockSize == 0 {
		blockSize = DefaultBlockSize
	}
	if err := checkBlockSize(blockSize); err != nil {
		return nil, err
	}
	m := &Matrix{
		rows:       rows,
		cols:       cols,
		blockSize:  blockSize,
		blockShift: uint(bits.TrailingZeros(uint(blockSize))),
		packed:     hugemem.Make[byte]((n + 1) / 2),
		dtype:      "float32",
	}
	var absmax []float32
	if opts.DisableDoubleQuant {
		absmax = make([]float32, quant.NumBlocks(n, blockSize))
	} else {
		// Only the double quantization reads them: scratch memory.
		scratch := absmaxScratch.Get().(*[]float32)
		defer absmaxScratch.Put(scratch)
		if nb := quant.NumBlocks(n, blockSize); cap(*scratch) < nb {
			*scratch = make([]float32, nb)
		}
		absmax = (*scratch)[:quant.NumBlocks(n, blockSize)]
	}
	if bad := quantizeBlocks(m.packed, absmax, w, blockSize); bad >= 0 {
		b := bad / blockSize
		return nil, fmt.Errorf("nf4: block %d (row %d, column %d): element %d is %v: %w",
			b, bad/cols, bad%cols, bad, w[bad], quant.ErrNonFinite)
	}
	if opts.DisableDoubleQuant {
		m.absmax = absmax
		return m, nil
	}
	m.dq, err = quantizeAbsmax(absmax)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// absmaxScratch holds float32 absmax buffers for Quantize with double
// quantization, which needs them only until they are quantized: a loader
// quantizing hundreds of matrices then leaves no garbage of them behind.
var absmaxScratch = sync.Pool{New: func() any { return new([]float32) }}

// dynamicTable holds the nearest-code search over quant.DynamicMap(true, 7,
// 8) weakly: a loader quantizing matrix after matrix reuses it, and once
// loading is done the garbage collector frees its 390 KB, which a server
// would otherwise keep for its whole life for nothing (the served weights
// are quantized already). Rebuilding it after a collection costs about
// 1.2 ms, against tens of milliseconds for a matrix of a real model.
var dynamicTable struct {
	mu sync.Mutex
	p  weak.Pointer[nearestTable]
}

// dynamicSearch returns the table of dynamicTable, built if it was collected.
func dynamicSearch() *nearestTable {
	dynamicTable.mu.Lock()
	defer dynamicTable.mu.Unlock()
	if t := dynamicTable.p.Value(); t != nil {
		return t
	}
	t := newNearestTable(quant.DynamicMap(true, 7, 8))
	dynamicTable.p = weak.Make(t)
	return t
}

// quantizeAbsmax is bitsandbytes' double quantization of the absmax values:
// offset = mean(absmax), then absmax − offset quantized blockwise (blocks of
// 256) with the signed dynamic map.
func quantizeAbsmax(absmax []float32) (*doubleQuant, error) {
	// The mean is accumulated in float64; PyTorch sums float32 pairwise, so
	// the offset can differ from bitsandbytes' in the last bit.
	var sum float64
	for _, a := range absmax {
		sum += float64(a)
	}
	offset := float32(sum / float64(len(absmax)))
	code := quant.DynamicMap(true, 7, 8)
	// absmax and offset lie in [0, MaxFloat32], so every centered value
	// absmax[i] − offset is finite and the search needs no checks.
	search := dynamicSearch()
	codes := make([]uint8, len(absmax))
	nested := make([]float32, quant.NumBlocks(len(absmax), NestedBlockSize))
	parallelFor(len(absmax), parallelMinBlocks, NestedBlockSize, func(lo, hi int) {
		search.quantizeNested(codes[lo:hi], nested[lo/NestedBlockSize:quant.NumBlocks(hi, NestedBlockSize)], absmax[lo:hi], offset, NestedBlockSize)
	})
	return newDoubleQuant(codes, nested, code, offset, NestedBlockSize), nil
}

// scale returns the absmax of block b, decoding it with double quantization.
// The product is rounded before the offset is added, as bitsandbytes
// dequantizes the absmax and then adds the offset in a second operation.
func (m *Matrix) scale(b int) float32 {
	if dq := m.dq; dq != nil {
		return float32(dq.code[dq.codes[b]]*dq.nested[b>>dq.shift]) + dq.offset
	}
	return m.absmax[b]
}

// Dims returns the logical shape [rows, cols].
func (m *Matrix) Dims() (rows, cols int) { return m.rows, m.cols }

// Format returns "nf4".
func (m *Matrix) Format() string { return "nf4" }

// BlockSize returns the number of consecutive weights that share an absmax.
func (m *Matrix) BlockSize() int { return m.blockSize }

// DoubleQuant reports whether the absmax values are stored 8-bit quantized.
func (m *Matrix) DoubleQuant() bool { return m.dq != nil }

// StorageBytes returns the bytes the format keeps: the packed codes, plus a
// float32 absmax per block, or with double quantization a uint8 per block, a
// float32 per 256 blocks and the float32 offset. The two codebooks are
// constants of the format and are not counted (bitsandbytes writes 64 bytes
// and 1 KiB of them next to each weight).
func (m *Matrix) StorageBytes() int64 {
	b := int64(len(m.packed))
	if m.dq == nil {
		return b + 4*int64(len(m.absmax))
	}
	return b + int64(len(m.dq.codes)) + 4*int64(len(m.dq.nested)) + 4
}

// BitsPerParam returns 8·StorageBytes/(rows·cols): exactly 4.5 at block 64
// without double quantization, 4 + 8/64 + 32/(64·256) + 32/(rows·cols) with it.
func (m *Matrix) BitsPerParam() float64 {
	return 8 * float64(m.StorageBytes()) / (float64(m.rows) * float64(m.cols))
}

// Absmax returns the float32 absmax of every block, decoded from the 8-bit
// values with double quantization. It allocates a new slice.
func (m *Matrix) Absmax() []float32 {
	out := make([]float32, quant.NumBlocks(m.rows*m.cols, m.blockSize))
	for b := range out {
		out[b] = m.scale(b)
	}
	return out
}

// DequantizeRows writes rows [start, end) as float32, row-major, into
// dst[:(end-start)·cols]. It decodes only the blocks those rows touch and
// does not allocate.
func (m *Matrix) DequantizeRows(dst []float32, start, end int) error {
	if start < 0 || end > m.rows || start > end {
		return fmt.Errorf("nf4: DequantizeRows: row range [%d, %d) out of bounds for %d rows", start, end, m.rows)
	}
	if need := (end - start) * m.cols; len(dst) < need {
		return fmt.Errorf("nf4: DequantizeRows: destination has %d elements, rows [%d, %d) of %d columns need %d",
			len(dst), start, end, m.cols, need)
	}
	m.dequantRange(dst, start*m.cols, end*m.cols)
	return nil
}

// Dequantize writes the whole matrix as float32, row-major, into
// dst[:rows·cols]. Large matrices are decoded on several goroutines.
func (m *Matrix) Dequantize(dst []float32) error {
	n := m.rows * m.cols
	if len(dst) < n {
		return fmt.Errorf("nf4: Dequantize: destination has %d elements, [%d, %d] needs %d", len(dst), m.rows, m.cols, n)
	}
	parallelFor(n, parallelMinElems, m.blockSize, func(lo, hi int) {
		m.dequantRange(dst[lo:hi], lo, hi)
	})
	return nil
}

// MulTRows computes the entries of y = x·Wᵀ that weight rows [start, end)
// give, y[i, start:end] for every row i of x ([n, cols]; y is [n, rows] and
// its other entries are left alone), with MulT's summation order. It runs
// on the calling goroutine and does not allocate, so that a caller with its
// own workers (a decode step, hundreds of small products per token) can
// split a product by weight rows without MulT's goroutine per call.
func (m *Matrix) MulTRows(y, x []float32, n, start, end int) error {
	if start < 0 || end > m.rows || start > end {
		return fmt.Errorf("nf4: MulTRows: rows [%d, %d) outside [0, %d)", start, end, m.rows)
	}
	if err := m.checkMulT("MulTRows", y, x, n); err != nil {
		return err
	}
	if n > 0 && start < end {
		m.mulTRange(y, x, n, start, end)
	}
	return nil
}

// checkMulT checks the shapes of y = x·Wᵀ for n rows of x, naming op (the
// method) in its error.
func (m *Matrix) checkMulT(op string, y, x []float32, n int) error {
	if n < 0 || n > math.MaxInt/4/max(m.rows, m.cols) {
		return fmt.Errorf("nf4: %s: row count %d out of range", op, n)
	}
	if len(x) != n*m.cols {
		return fmt.Errorf("nf4: %s: x has %d elements, want n·cols = %d·%d = %d", op, len(x), n, m.cols, n*m.cols)
	}
	if len(y) != n*m.rows {
		return fmt.Errorf("nf4: %s: y has %d elements, want n·rows = %d·%d = %d", op, len(y), n, m.rows, n*m.rows)
	}
	return nil
}

// MulT computes y = x·Wᵀ for n rows of x ([n, cols], row-major) into y
// ([n, rows], overwritten), decoding the 4-bit codes on the fly (with
// AVX-512, once per group of up to four rows of x). Sums are accumulated in
// float32 with fused multiply-adds (one rounding per weight) in one fixed
// order, the same for every kernel level and CPU, so the result does not
// depend on the machine. Products of at least 2²² multiply-adds are split by
// rows across GOMAXPROCS goroutines, which costs one small allocation;
// smaller ones run on the calling goroutine and do not allocate.
func (m *Matrix) MulT(y, x []float32, n int) error {
	if err := m.checkMulT("MulT", y, x, n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if macs := float64(n) * float64(m.rows) * float64(m.cols); macs < parallelMinMACs {
		m.mulTRange(y, x, n, 0, m.rows)
		return nil
	}
	parallelFor(m.rows, 0, 1, func(r0, r1 int) { m.mulTRange(y, x, n, r0, r1) })
	return nil
}
