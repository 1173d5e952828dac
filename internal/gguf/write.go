package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Builder assembles a GGUF version 3 file: metadata and tensors in the order
// they are added. The data alignment is the "general.alignment" metadata
// value if one was added, else DefaultAlignment.
type Builder struct {
	kvs     []KV
	keys    map[string]bool
	tensors []builderTensor
	names   map[string]bool
}

type builderTensor struct {
	info TensorInfo
	data []byte
}

// AddKV adds a metadata pair; x is any Go type NewValue accepts, or a Value.
func (b *Builder) AddKV(key string, x any) error {
	v, ok := x.(Value)
	if !ok {
		var err error
		if v, err = NewValue(x); err != nil {
			return fmt.Errorf("gguf: metadata key %q: %w", key, err)
		}
	}
	if b.keys[key] {
		return fmt.Errorf("gguf: metadata key %q added twice", key)
	}
	if key == AlignmentKey {
		a, isInt := v.asInt64()
		if !isInt || a <= 0 || a > math.MaxUint32 || a&(a-1) != 0 {
			return fmt.Errorf("gguf: metadata key %q: %v is not a power of two in [1, 2^32)", key, v.x)
		}
	}
	if b.keys == nil {
		b.keys = map[string]bool{}
	}
	b.keys[key] = true
	b.kvs = append(b.kvs, KV{Key: key, Value: v})
	return nil
}

// AddTensor adds a tensor of the given ggml type whose dims are in ggml order
// (innermost first) and whose data is already encoded. The data length must
// match the dims and type.
func (b *Builder) AddTensor(name string, typ GGMLType, dims []uint64, data []byte) error {
	if b.names[name] {
		return fmt.Errorf("gguf: tensor %q added twice", name)
	}
	if len(dims) > maxDims {
		return fmt.Errorf("gguf: tensor %q: %d dimensions, at most %d allowed", name, len(dims), maxDims)
	}
	blockElems, blockBytes, ok := typ.BlockSize()
	if !ok {
		return fmt.Errorf("gguf: tensor %q: unknown ggml type %d", name, uint32(typ))
	}
	t := TensorInfo{Name: name, Dims: append([]uint64(nil), dims...), Type: typ}
	// ggml blocks never straddle rows, so the innermost dimension (the row
	// length) must be a whole number of blocks, as Parse requires.
	if len(dims) > 0 && dims[0]%blockElems != 0 {
		return fmt.Errorf("gguf: tensor %q: innermost dimension %d is not a multiple of the %v block size %d", name, dims[0], typ, blockElems)
	}
	n := t.NumElements()
	if n%blockElems != 0 || n/blockElems*blockBytes != uint64(len(data)) {
		return fmt.Errorf("gguf: tensor %q: %d bytes of data, want %d %v elements", name, len(data), n, typ)
	}
	t.Size = uint64(len(data))
	if b.names == nil {
		b.names = map[string]bool{}
	}
	b.names[name] = true
	b.tensors = append(b.tensors, builderTensor{info: t, data: data})
	return nil
}

// AddMatrix adds a [rows, cols] weight (PyTorch order) whose data is already
// encoded in typ, e.g. the raw blocks of a Q8_0 or Q4_K matrix: rows of cols
// elements, each row a whole number of blocks. Its GGUF dims are [cols, rows].
func (b *Builder) AddMatrix(name string, typ GGMLType, rows, cols int, data []byte) error {
	if rows < 0 || cols < 0 {
		return fmt.Errorf("gguf: tensor %q: negative shape [%d, %d]", name, rows, cols)
	}
	return b.AddTensor(name, typ, []uint64{uint64(cols), uint64(rows)}, data)
}

// AddFloat32 adds an F32 tensor whose shape is given outermost first
// (row-major, PyTorch order).
func (b *Builder) AddFloat32(name string, shape []int, data []float32) error {
	dims := make([]uint64, len(shape))
	for i, s := range shape {
		if s < 0 {
			return fmt.Errorf("gguf: tensor %q: negative dimension in shape %v", name, shape)
		}
		dims[len(shape)-1-i] = uint64(s)
	}
	raw := make([]byte, 4*len(data))
	for i, x := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return b.AddTensor(name, TypeF32, dims, raw)
}

func (b *Builder) alignment() uint64 {
	for _, kv := range b.kvs {
		if kv.Key == AlignmentKey {
			a, _ := kv.Value.asInt64()
			return uint64(a)
		}
	}
	return DefaultAlignment
}

// WriteTo writes the file to w.
func (b *Builder) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: bufio.NewWriter(w)}
	align := b.alignment()
	cw.write([]byte(Magic))
	cw.u32(3)
	cw.u64(uint64(len(b.tensors)))
	cw.u64(uint64(len(b.kvs)))
	for _, kv := range b.kvs {
		cw.str(kv.Key)
		cw.u32(uint32(kv.Value.typ))
		cw.value(kv.Value)
	}
	offset := uint64(0)
	for i := range b.tensors {
		t := &b.tensors[i].info
		t.Offset = offset
		offset = alignUp(offset+t.Size, align)
		cw.str(t.Name)
		cw.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			cw.u64(d)
		}
		cw.u32(uint32(t.Type))
		cw.u64(t.Offset)
	}
	if len(b.tensors) > 0 {
		cw.pad(align)
	}
	for _, t := range b.tensors {
		cw.write(t.data)
		cw.pad(align)
	}
	if cw.err == nil {
		cw.err = cw.w.Flush()
	}
	return cw.n, cw.err
}

type countingWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countingWriter) write(p []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
}

func (c *countingWriter) pad(align uint64) {
	if extra := alignUp(uint64(c.n), align) - uint64(c.n); extra > 0 {
		c.write(make([]byte, extra))
	}
}

func (c *countingWriter) u8(x uint8) { c.write([]byte{x}) }

func (c *countingWriter) u16(x uint16) { c.write(binary.LittleEndian.AppendUint16(nil, x)) }

func (c *countingWriter) u32(x uint32) { c.write(binary.LittleEndian.AppendUint32(nil, x)) }

func (c *countingWriter) u64(x uint64) { c.write(binary.LittleEndian.AppendUint64(nil, x)) }

func (c *countingWriter) str(s string) {
	c.u64(uint64(len(s)))
	c.write([]byte(s))
}

func (c *countingWriter) value(v Value) {
	switch x := v.x.(type) {
	case uint8:
		c.u8(x)
	case int8:
		c.u8(uint8(x))
	case bool:
		if x {
			c.u8(1)
		} else {
			c.u8(0)
		}
	case uint16:
		c.u16(x)
	case int16:
		c.u16(uint16(x))
	case uint32:
		c.u32(x)
	case int32:
		c.u32(uint32(x))
	case float32:
		c.u32(math.Float32bits(x))
	case uint64:
		c.u64(x)
	case int64:
		c.u64(uint64(x))
	case float64:
		c.u64(math.Float64bits(x))
	case string:
		c.str(x)
	default:
		c.u32(uint32(v.elem))
		c.u64(uint64(v.Len()))
		c.arrayElems(v)
	}
}

func (c *countingWriter) arrayElems(v Value) {
	switch x := v.x.(type) {
	case []uint8:
		c.write(x)
	case []int8:
		for _, e := range x {
			c.u8(uint8(e))
		}
	case []bool:
		for _, e := range x {
			c.value(Value{typ: TypeBool, x: e})
		}
	case []uint16:
		for _, e := range x {
			c.u16(e)
		}
	case []int16:
		for _, e := range x {
			c.u16(uint16(e))
		}
	case []uint32:
		for _, e := range x {
			c.u32(e)
		}
	case []int32:
		for _, e := range x {
			c.u32(uint32(e))
		}
	case []float32:
		for _, e := range x {
			c.u32(math.Float32bits(e))
		}
	case []uint64:
		for _, e := range x {
			c.u64(e)
		}
	case []int64:
		for _, e := range x {
			c.u64(uint64(e))
		}
	case []float64:
		for _, e := range x {
			c.u64(math.Float64bits(e))
		}
	case []string:
		for _, e := range x {
			c.str(e)
		}
	case []Value:
		for _, e := range x {
			c.value(e)
		}
	}
}
