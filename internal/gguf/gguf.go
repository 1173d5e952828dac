// Package gguf reads and writes GGUF, the single-file model format of
// llama.cpp and ggml: a header, metadata key/value pairs, tensor descriptions
// and an aligned data section.
//
// Layout (all little-endian): the magic "GGUF", a uint32 version (2 and 3 are
// read; they share the layout), a uint64 tensor count, a uint64 metadata count;
// the metadata pairs (key string, uint32 value type, value); the tensor
// descriptions (name string, uint32 dimension count, uint64 dims innermost
// first, uint32 ggml type, uint64 offset into the data section); padding to
// the alignment (metadata "general.alignment", default 32); the data section.
// A string is a uint64 byte length and the bytes; an array is a uint32
// element type, a uint64 count and the elements.
//
// The parser checks every count, length and offset against the bytes that are
// really there before it allocates, and reports problems as errors that name
// the byte position, key or tensor; it never panics on malformed input.
package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/golora/golora/internal/half"
	"github.com/golora/golora/internal/pagecache"
	"math"
	"os"
)

// Magic is the four bytes every GGUF file starts with.
const Magic = "GGUF"

// DefaultAlignment is the data alignment of a file without "general.alignment".
const DefaultAlignment = 32

// AlignmentKey is the metadata key that sets the data alignment.
const AlignmentKey = "general.alignment"

// maxDims is ggml's GGML_MAX_DIMS: ggml tensors have at most four dimensions.
const maxDims = 4

// maxArrayDepth bounds the nesting of arrays of arrays, so a hostile file
// cannot drive the parser's recursion arbitrarily deep.
const maxArrayDepth = 16

// ErrKeyNotFound is wrapped by the typed metadata getters when the key is
// absent, so callers can tell an optional key that is missing from one that
// is malformed.
var ErrKeyNotFound = errors.New("key not found")

// KV is one metadata key/value pair.
type KV struct {
	Key   string
	Value Value
}

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name string
	// Dims lists the dimensions in ggml order: Dims[0] is the innermost,
	// contiguous one. A PyTorch weight of shape [out, in] has Dims [in, out].
	Dims   []uint64
	Type   GGMLType
	Offset uint64 // byte offset of the data inside the data section
	Size   uint64 // bytes of data
}

// Shape returns the dimensions outermost first (row-major, PyTorch order),
// the reverse of Dims.
func (t TensorInfo) Shape() []int {
	s := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		s[len(s)-1-i] = int(d)
	}
	return s
}

// RowsCols returns the tensor as a matrix of rows of contiguous elements, as
// ggml stores it: cols is the innermost dimension (Dims[0]) and rows the
// product of the others (1 for a vector). A quantized tensor's rows are whole
// numbers of blocks, which Parse has checked. It returns an error naming the
// tensor if it has no dimensions or a zero one, or if a count overflows int.
func (t TensorInfo) RowsCols() (rows, cols int, err error) {
	if len(t.Dims) == 0 {
		return 0, 0, fmt.Errorf("gguf: tensor %q has no dimensions", t.Name)
	}
	n := t.NumElements()
	if n == 0 {
		return 0, 0, fmt.Errorf("gguf: tensor %q has a zero dimension in %v", t.Name, t.Dims)
	}
	if n > math.MaxInt {
		return 0, 0, fmt.Errorf("gguf: tensor %q: %d elements overflow int", t.Name, n)
	}
	return int(n / t.Dims[0]), int(t.Dims[0]), nil
}

// NumElements returns the product of the dimensions.
func (t TensorInfo) NumElements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// File is a parsed GGUF file. Its tensor data stays in the bytes it was parsed
// from (or the file mapping made by Open) and is read on demand.
type File struct {
	// Version is the format version (2 or 3).
	Version uint32
	// Alignment is the data alignment in bytes.
	Alignment uint64
	// DataOffset is where the data section starts, in bytes from the start of
	// the file.
	DataOffset uint64

	kvs         []KV
	kvIndex     map[string]int
	tensors     []TensorInfo
	tensorIndex map[string]int
	data        []byte
	release     func() error
	fd          *os.File // the file data maps, open until Close; nil for Parse
}

// ReadData copies data, a part of a tensor's bytes from TensorBytes, into
// dst (at least len(data) bytes). For a File from Open it reads the file
// (pread) instead of touching the mapping, which takes no page fault per
// page and leaves none resident: a loader converting a tensor piece by piece
// through a small buffer reads several times faster this way. For a File
// from Parse it copies.
func (f *File) ReadData(dst, data []byte) error {
	if f.fd == nil || f.release == nil {
		copy(dst, data)
		return nil
	}
	if err := pagecache.Read(f.fd, f.data, data, dst); err != nil {
		return fmt.Errorf("gguf: %s: %w", f.fd.Name(), err)
	}
	return nil
}

// Path returns the path of a File from Open, "" for one from Parse.
func (f *File) Path() string {
	if f.fd == nil {
		return ""
	}
	return f.fd.Name()
}

// Stat describes the file Open opened, which its path may no longer name
// (another file renamed over it since): a caller that opens the path again
// checks that it has the same file (os.SameFile). It is an error for a File
// from Parse or a closed one.
func (f *File) Stat() (os.FileInfo, error) {
	if f.fd == nil || f.release == nil {
		return nil, errors.New("gguf: Stat of a File that is not an open file")
	}
	return f.fd.Stat()
}

// FileOffset returns where data, a part of a tensor's bytes from
// TensorBytes, starts in the file, for a caller that reads the file itself
// (with O_DIRECT, say); false for a File from Parse, a closed one, or data
// not in f.
func (f *File) FileOffset(data []byte) (int64, bool) {
	if f.fd == nil || f.release == nil {
		return 0, false
	}
	return pagecache.Offset(f.data, data)
}

// PrefetchData asks the kernel to read data, a part of a tensor's bytes from
// TensorBytes, into the page cache in the background (see
// pagecache.Prefetch), so that a ReadData of it later does not wait for the
// disk. It does nothing for a File from Parse.
func (f *File) PrefetchData(data []byte) {
	if f.fd != nil && f.release != nil {
		pagecache.Prefetch(f.fd, f.data, data)
	}
}

// EvictData asks the kernel to drop data, a part of a tensor's bytes from
// TensorBytes that the caller has read, from the page cache (see
// pagecache.Evict). It does nothing for a File from Parse.
func (f *File) EvictData(data []byte) {
	if f.fd != nil && f.release != nil {
		pagecache.Evict(f.fd, f.data, data)
	}
}

// Close releases the file mapping made by Open. After Close, byte slices from
// TensorBytes must not be used; metadata and float32 tensors returned earlier
// stay valid. Close on a File from Parse does nothing.
func (f *File) Close() error {
	if f.release == nil {
		return nil
	}
	release := f.release
	f.release = nil
	f.data = nil
	return release()
}

// KVs returns the metadata pairs in file order.
func (f *File) KVs() []KV {
	return append([]KV(nil), f.kvs...)
}

// Lookup returns the metadata value of key.
func (f *File) Lookup(key string) (Value, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return Value{}, false
	}
	return f.kvs[i].Value, true
}

func (f *File) lookup(key string) (Value, error) {
	v, ok := f.Lookup(key)
	if !ok {
		return Value{}, fmt.Errorf("gguf: metadata key %q: %w", key, ErrKeyNotFound)
	}
	return v, nil
}

func typeError(key string, v Value, want string) error {
	return fmt.Errorf("gguf: metadata key %q: has type %s, want %s", key, v.typeDescription(), want)
}

// String returns the string value of key.
func (f *File) String(key string) (string, error) {
	v, err := f.lookup(key)
	if err != nil {
		return "", err
	}
	s, ok := v.x.(string)
	if !ok {
		return "", typeError(key, v, "string")
	}
	return s, nil
}

// Int returns the value of key, which may have any integer type, as an int64.
func (f *File) Int(key string) (int64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	n, ok := v.asInt64()
	if !ok {
		if v.isInteger() {
			return 0, fmt.Errorf("gguf: metadata key %q: %v does not fit in int64", key, v.x)
		}
		return 0, typeError(key, v, "an integer")
	}
	return n, nil
}

// Float returns the value of key, which may be a float32 or float64.
func (f *File) Float(key string) (float64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	switch x := v.x.(type) {
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	}
	return 0, typeError(key, v, "a float")
}

// Bool returns the boolean value of key.
func (f *File) Bool(key string) (bool, error) {
	v, err := f.lookup(key)
	if err != nil {
		return false, err
	}
	b, ok := v.x.(bool)
	if !ok {
		return false, typeError(key, v, "bool")
	}
	return b, nil
}

// Strings returns the value of key, an array of strings.
func (f *File) Strings(key string) ([]string, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	s, ok := v.x.([]string)
	if !ok {
		return nil, typeError(key, v, "array of string")
	}
	return s, nil
}

// Float32s returns the value of key, an array of float32 (an array of float64
// is converted).
func (f *File) Float32s(key string) ([]float32, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	switch x := v.x.(type) {
	case []float32:
		return x, nil
	case []float64:
		out := make([]float32, len(x))
		for i, e := range x {
			out[i] = float32(e)
		}
		return out, nil
	}
	return nil, typeError(key, v, "array of float32")
}

// Int32s returns the value of key, an array of any integer type whose
// elements all fit in int32.
func (f *File) Int32s(key string) ([]int32, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	if v.typ != TypeArray || v.elem == TypeArray || !(Value{typ: v.elem}).isInteger() {
		return nil, typeError(key, v, "array of integers")
	}
	if x, ok := v.x.([]int32); ok {
		return x, nil
	}
	out := make([]int32, v.Len())
	for i := range out {
		var n int64
		var ok bool
		switch x := v.x.(type) {
		case []uint8:
			n, ok = int64(x[i]), true
		case []int8:
			n, ok = int64(x[i]), true
		case []uint16:
			n, ok = int64(x[i]), true
		case []int16:
			n, ok = int64(x[i]), true
		case []uint32:
			n, ok = int64(x[i]), true
		case []int64:
			n, ok = x[i], true
		case []uint64:
			n, ok = int64(x[i]), x[i] <= math.MaxInt64
		}
		if !ok || n < math.MinInt32 || n > math.MaxInt32 {
			return nil, fmt.Errorf("gguf: metadata key %q: element %d does not fit in int32", key, i)
		}
		out[i] = int32(n)
	}
	return out, nil
}

// Tensors returns the tensor descriptions in file order.
func (f *File) Tensors() []TensorInfo {
	return append([]TensorInfo(nil), f.tensors...)
}

// Tensor returns the description of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.tensorIndex[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.tensors[i], true
}

// TensorBytes returns the raw data of the named tensor. The slice aliases the
// file's bytes: do not modify it, and do not use it after Close.
func (f *File) TensorBytes(name string) ([]byte, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("gguf: tensor %q not found", name)
	}
	if f.data == nil {
		return nil, fmt.Errorf("gguf: tensor %q: file is closed", name)
	}
	start := f.DataOffset + t.Offset
	return f.data[start : start+t.Size : start+t.Size], nil
}

// TensorFloat32 returns the named tensor's elements as a new float32 slice in
// row-major order. F32, F16 and BF16 tensors are supported; any other type is
// an error naming the tensor and its type.
func (f *File) TensorFloat32(name string) ([]float32, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("gguf: tensor %q not found", name)
	}
	raw, err := f.TensorBytes(name)
	if err != nil {
		return nil, err
	}
	n := t.NumElements()
	out := make([]float32, n)
	switch t.Type {
	case TypeF32:
		if _, err := binary.Decode(raw, binary.LittleEndian, out); err != nil {
			return nil, fmt.Errorf("gguf: tensor %q: %w", name, err)
		}
	case TypeF16:
		half.DecodeF16(out, raw)
	case TypeBF16:
		half.DecodeBF16(out, raw)
	default:
		return nil, fmt.Errorf("gguf: tensor %q has type %v; only F32, F16 and BF16 can be read as float32", name, t.Type)
	}
	return out, nil
}
