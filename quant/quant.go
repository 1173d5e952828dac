// Package quant holds what every quantized weight format in golora shares: the
// Matrix interface that the model's frozen linear layers run on, blockwise absmax
// scaling, the 8-bit dynamic map used for double quantization, the simpler formats
// kept for comparison (FP4, INT4, INT8), the 16-bit float matrices (Half: BF16
// and F16, as checkpoints store embeddings and heads) and quality reports.
package quant

// Matrix is a frozen weight of shape [rows, cols] (PyTorch's [out, in]) held in a
// compressed format. Implementations never materialize the whole float32 matrix:
// callers ask for a range of rows at a time, or for a product computed straight
// from the compressed codes.
//
// Methods are safe for concurrent use by multiple goroutines; they do not modify
// the receiver.
type Matrix interface {
	// Dims returns the logical shape [rows, cols].
	Dims() (rows, cols int)

	// DequantizeRows writes rows [start, end) as float32, row-major, into
	// dst[:(end-start)*cols]. It does not allocate. It returns an error if the
	// range is out of bounds or dst is too short.
	DequantizeRows(dst []float32, start, end int) error

	// MulT computes y = x·Wᵀ for n rows of x: x is [n, cols] and y is
	// [n, rows], both row-major; y is overwritten. It returns an error if the
	// lengths do not match.
	MulT(y, x []float32, n int) error

	// StorageBytes returns the exact number of bytes the format keeps for this
	// matrix: codes, scales and any nested statistics, not Go struct overhead.
	StorageBytes() int64

	// BitsPerParam returns 8·StorageBytes / (rows·cols).
	BitsPerParam() float64

	// Format names the format, e.g. "nf4", "fp4", "int4", "int8".
	Format() string
}
