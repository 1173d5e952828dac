package safetensors

import (
	"encoding/binary"
	"fmt"
	"github.com/golora/golora/internal/half"
	"io"
	"math"
)

// NumElements returns the product of t.Shape (1 for a scalar) and checks that
// Data holds exactly that many elements of t.DType.
func (t Tensor) NumElements() (int, error) {
	if t.DType.Size() == 0 {
		return 0, fmt.Errorf("safetensors: tensor %q: unknown dtype %q", t.Name, t.DType)
	}
	for _, d := range t.Shape {
		if d < 0 {
			return 0, fmt.Errorf("safetensors: tensor %q: shape %v has a negative dimension", t.Name, t.Shape)
		}
	}
	size, ok := byteSize(t.DType, t.Shape, uint64(len(t.Data)))
	if !ok || size != uint64(len(t.Data)) {
		return 0, fmt.Errorf("safetensors: tensor %q: dtype %s with shape %v does not match its %d bytes of data", t.Name, t.DType, t.Shape, len(t.Data))
	}
	return int(size) / t.DType.Size(), nil
}

// Float32s returns the elements of a floating-point tensor (F32, F16, BF16 or
// F64) converted to float32, in a newly allocated slice. F64 values are
// rounded to the nearest float32.
func (t Tensor) Float32s() ([]float32, error) {
	n, err := t.NumElements()
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	if err := t.DecodeFloat32s(out, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// DecodeFloat32s writes elements [off, off+len(dst)) of a floating-point
// tensor (F32, F16, BF16 or F64) into dst converted to float32, as Float32s
// converts them, so that a caller can decode a tensor a part at a time into
// memory of its own.
func (t Tensor) DecodeFloat32s(dst []float32, off int) error {
	n, err := t.NumElements()
	if err != nil {
		return err
	}
	if off < 0 || off+len(dst) > n {
		return fmt.Errorf("safetensors: tensor %q: elements [%d, %d) of %d", t.Name, off, off+len(dst), n)
	}
	size := t.DType.Size()
	d := t.Data[off*size : (off+len(dst))*size]
	switch t.DType {
	case F32:
		if _, err := binary.Decode(d, binary.LittleEndian, dst); err != nil {
			return fmt.Errorf("safetensors: tensor %q: %w", t.Name, err)
		}
	case F16:
		half.DecodeF16(dst, d)
	case BF16:
		half.DecodeBF16(dst, d)
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:])))
		}
	default:
		return fmt.Errorf("safetensors: tensor %q: dtype %s is not F32, F16, BF16 or F64", t.Name, t.DType)
	}
	return nil
}

// Float32Bytes encodes v as little-endian F32 data.
func Float32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	putFloat32s(b, F32, v)
	return b
}

// F16Bytes encodes v as little-endian F16 data, rounding to nearest even.
func F16Bytes(v []float32) []byte {
	b := make([]byte, 2*len(v))
	putFloat32s(b, F16, v)
	return b
}

// BF16Bytes encodes v as little-endian BF16 data, rounding to nearest even.
func BF16Bytes(v []float32) []byte {
	b := make([]byte, 2*len(v))
	putFloat32s(b, BF16, v)
	return b
}

// FromFloat32 builds a tensor of the given floating-point dtype (F32, F16,
// BF16 or F64) holding values, which must have as many elements as shape.
func FromFloat32(name string, dtype DType, shape []int, values []float32) (Tensor, error) {
	if !isFloatDType(dtype) {
		return Tensor{}, fmt.Errorf("safetensors: tensor %q: cannot encode float32 values as dtype %q", name, dtype)
	}
	if err := checkElements(name, shape, len(values)); err != nil {
		return Tensor{}, err
	}
	data := make([]byte, dtype.Size()*len(values))
	putFloat32s(data, dtype, values)
	return Tensor{Name: name, DType: dtype, Shape: append([]int(nil), shape...), Data: data}, nil
}

// EncodeFloat32 writes values to w in the given floating-point dtype (F32,
// F16, BF16 or F64), a chunk at a time so that no full copy is made. It is
// meant for StreamTensor.WriteData.
func EncodeFloat32(w io.Writer, dtype DType, values []float32) error {
	if !isFloatDType(dtype) {
		return fmt.Errorf("safetensors: cannot encode float32 values as dtype %q", dtype)
	}
	const chunk = 16 << 10
	size := dtype.Size()
	buf := make([]byte, size*min(chunk, len(values)))
	for len(values) > 0 {
		n := min(chunk, len(values))
		putFloat32s(buf[:n*size], dtype, values[:n])
		if _, err := w.Write(buf[:n*size]); err != nil {
			return err
		}
		values = values[n:]
	}
	return nil
}

func isFloatDType(d DType) bool {
	return d == F32 || d == F16 || d == BF16 || d == F64
}

// checkElements reports whether shape has exactly n elements.
func checkElements(name string, shape []int, n int) error {
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("safetensors: tensor %q: shape %v has a negative dimension", name, shape)
		}
	}
	count, ok := byteSize(U8, shape, uint64(n))
	if !ok || count != uint64(n) {
		return fmt.Errorf("safetensors: tensor %q: shape %v does not have %d elements", name, shape, n)
	}
	return nil
}

// putFloat32s encodes v into b, which is exactly dtype.Size()·len(v) bytes.
func putFloat32s(b []byte, dtype DType, v []float32) {
	switch dtype {
	case F32:
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
	case F16:
		for i, x := range v {
			binary.LittleEndian.PutUint16(b[2*i:], half.Float32ToF16(x))
		}
	case BF16:
		for i, x := range v {
			binary.LittleEndian.PutUint16(b[2*i:], half.Float32ToBF16(x))
		}
	case F64:
		for i, x := range v {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(float64(x)))
		}
	}
}
