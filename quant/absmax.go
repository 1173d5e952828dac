package quant

import (
	"errors"
	"fmt"
	"math"
)

// Block sizes accepted by the blockwise formats. They are the sizes
// bitsandbytes allows for its 4-bit and blockwise 8-bit kernels.
const (
	MinBlockSize = 32
	MaxBlockSize = 4096
)

// ErrBlockSize is wrapped by the error returned for a block size outside
// [MinBlockSize, MaxBlockSize] or not a power of two.
var ErrBlockSize = errors.New("invalid block size")

// ErrNonFinite is wrapped by the error returned when a weight to quantize is
// NaN or ±Inf: such a value would poison the absmax of its whole block.
var ErrNonFinite = errors.New("NaN or infinite value")

// ValidateBlockSize reports whether blockSize is one of 32, 64, 128, …, 4096.
func ValidateBlockSize(blockSize int) error {
	if err := validateBlockSize(blockSize); err != nil {
		return fmt.Errorf("quant: %w", err)
	}
	return nil
}

// validateBlockSize is ValidateBlockSize without the package prefix, for
// errors that callers wrap with their own context.
func validateBlockSize(blockSize int) error {
	if blockSize < MinBlockSize || blockSize > MaxBlockSize || blockSize&(blockSize-1) != 0 {
		return fmt.Errorf("%w %d: want a power of two in [%d, %d]", ErrBlockSize, blockSize, MinBlockSize, MaxBlockSize)
	}
	return nil
}

// NumBlocks returns how many blocks of blockSize consecutive elements cover n
// elements; the last block may be partial. blockSize must be positive.
func NumBlocks(n, blockSize int) int {
	return (n + blockSize - 1) / blockSize
}

// BlockAbsmax writes max|x| of each block of blockSize consecutive elements of
// x into dst[:NumBlocks(len(x), blockSize)]; the last block may be partial.
// An all-zero block gets absmax 0. It returns an error wrapping ErrBlockSize
// for an invalid block size, an error if dst is too short, and an error
// wrapping ErrNonFinite naming the block and element of the first NaN or ±Inf.
func BlockAbsmax(dst, x []float32, blockSize int) error {
	if err := blockAbsmax(dst, x, blockSize); err != nil {
		return fmt.Errorf("quant: %w", err)
	}
	return nil
}

// blockAbsmax is BlockAbsmax without the package prefix on errors.
func blockAbsmax(dst, x []float32, blockSize int) error {
	if err := validateBlockSize(blockSize); err != nil {
		return err
	}
	nb := NumBlocks(len(x), blockSize)
	if len(dst) < nb {
		return fmt.Errorf("absmax destination has %d entries, %d blocks of %d need %d", len(dst), len(x), blockSize, nb)
	}
	for b := range nb {
		lo := b * blockSize
		hi := min(lo+blockSize, len(x))
		var m float32
		for i, v := range x[lo:hi] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nonFiniteError(b, lo, hi, lo+i, v)
			}
			m = max(m, abs32(v))
		}
		dst[b] = m
	}
	return nil
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

func nonFiniteError(block, lo, hi, index int, v float32) error {
	return fmt.Errorf("block %d (elements %d..%d): element %d is %v: %w", block, lo, hi-1, index, v, ErrNonFinite)
}

// checkShape validates the arguments every constructor shares.
func checkShape(w []float32, rows, cols, blockSize int) error {
	if rows <= 0 || cols <= 0 {
		return fmt.Errorf("shape [%d, %d]: rows and cols must be positive", rows, cols)
	}
	if rows > math.MaxInt/cols {
		return fmt.Errorf("shape [%d, %d] overflows int", rows, cols)
	}
	if len(w) != rows*cols {
		return fmt.Errorf("weight has %d elements, shape [%d, %d] needs %d", len(w), rows, cols, rows*cols)
	}
	return validateBlockSize(blockSize)
}

// checkRows validates the arguments of Matrix.DequantizeRows.
func checkRows(dst []float32, start, end, rows, cols int) error {
	if start < 0 || end > rows || start > end {
		return fmt.Errorf("row range [%d, %d) out of bounds for %d rows", start, end, rows)
	}
	if need := (end - start) * cols; len(dst) < need {
		return fmt.Errorf("destination has %d elements, rows [%d, %d) of %d columns need %d", len(dst), start, end, cols, need)
	}
	return nil
}

// checkMulT validates the arguments of Matrix.MulT.
func checkMulT(y, x []float32, n, rows, cols int) error {
	if n < 0 || n > math.MaxInt/max(rows, cols) {
		return fmt.Errorf("MulT: row count %d out of range", n)
	}
	if len(x) != n*cols {
		return fmt.Errorf("MulT: x has %d elements, want n·cols = %d·%d = %d", len(x), n, cols, n*cols)
	}
	if len(y) != n*rows {
		return fmt.Errorf("MulT: y has %d elements, want n·rows = %d·%d = %d", len(y), n, rows, n*rows)
	}
	return nil
}
