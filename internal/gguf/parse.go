package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"sort"
)

// Parse parses a whole GGUF file held in data. The File refers to data (tensor
// bytes are not copied), so data must not change while the File is in use.
func Parse(data []byte) (*File, error) {
	f, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	return f, nil
}

// parse does the work of Parse. Its errors, and those of the reader, carry
// no "gguf:" prefix and describe their context lazily (only once something
// is wrong), so that reading large vocabularies costs no formatting.
func parse(data []byte) (*File, error) {
	r := &reader{data: data}
	magic, err := r.bytes(4, "magic")
	if err != nil {
		return nil, err
	}
	if string(magic) != Magic {
		return nil, fmt.Errorf("bad magic %q, want %q: not a GGUF file", magic, Magic)
	}
	version, err := r.u32("version")
	if err != nil {
		return nil, err
	}
	switch {
	case version == 2 || version == 3:
	case bits.ReverseBytes32(version) == 2 || bits.ReverseBytes32(version) == 3:
		return nil, fmt.Errorf("version %d: big-endian files are not supported", bits.ReverseBytes32(version))
	default:
		return nil, fmt.Errorf("unsupported version %d (want 2 or 3)", version)
	}
	nTensors, err := r.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nKV, err := r.u64("metadata count")
	if err != nil {
		return nil, err
	}
	// Smallest possible pair: 8-byte key length, 4-byte type, 1-byte value.
	if err := r.checkCount(nKV, 8+4+1, "metadata count"); err != nil {
		return nil, err
	}
	f := &File{
		Version:     version,
		Alignment:   DefaultAlignment,
		kvs:         make([]KV, 0, nKV),
		kvIndex:     make(map[string]int, nKV),
		data:        data,
		tensorIndex: map[string]int{},
	}
	for i := uint64(0); i < nKV; i++ {
		at := r.off
		key, err := r.str("key")
		if err != nil {
			return nil, fmt.Errorf("metadata pair %d: %w", i, err)
		}
		v, err := r.typedValue(0)
		if err != nil {
			return nil, fmt.Errorf("metadata key %q: %w", key, err)
		}
		if _, dup := f.kvIndex[key]; dup {
			return nil, fmt.Errorf("at byte %d: metadata key %q appears twice", at, key)
		}
		f.kvIndex[key] = len(f.kvs)
		f.kvs = append(f.kvs, KV{Key: key, Value: v})
	}
	if err := f.readAlignment(); err != nil {
		return nil, err
	}

	// Smallest possible description: name length, dim count, type, offset.
	if err := r.checkCount(nTensors, 8+4+4+8, "tensor count"); err != nil {
		return nil, err
	}
	f.tensors = make([]TensorInfo, 0, nTensors)
	for i := uint64(0); i < nTensors; i++ {
		t, err := r.tensorInfo(i)
		if err != nil {
			return nil, err
		}
		if _, dup := f.tensorIndex[t.Name]; dup {
			return nil, fmt.Errorf("tensor %q appears twice", t.Name)
		}
		f.tensorIndex[t.Name] = len(f.tensors)
		f.tensors = append(f.tensors, t)
	}
	f.DataOffset = alignUp(uint64(r.off), f.Alignment)
	if err := f.checkTensorData(); err != nil {
		return nil, err
	}
	return f, nil
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

func (f *File) readAlignment() error {
	v, ok := f.Lookup(AlignmentKey)
	if !ok {
		return nil
	}
	a, isInt := v.asInt64()
	if !isInt {
		return fmt.Errorf("metadata key %q: has type %s, want an integer", AlignmentKey, v.typeDescription())
	}
	if a <= 0 || a > math.MaxUint32 || a&(a-1) != 0 {
		return fmt.Errorf("metadata key %q: %d is not a power of two in [1, 2^32)", AlignmentKey, a)
	}
	f.Alignment = uint64(a)
	return nil
}

// checkTensorData checks that every tensor's data is aligned, inside the file
// and disjoint from every other tensor's.
func (f *File) checkTensorData() error {
	if len(f.tensors) == 0 {
		return nil
	}
	fileSize := uint64(len(f.data))
	if f.DataOffset > fileSize {
		return fmt.Errorf("data section would start at byte %d, past the end of the %d-byte file", f.DataOffset, fileSize)
	}
	dataSize := fileSize - f.DataOffset
	for _, t := range f.tensors {
		if t.Offset%f.Alignment != 0 {
			return fmt.Errorf("tensor %q: data offset %d is not a multiple of the alignment %d", t.Name, t.Offset, f.Alignment)
		}
		if t.Offset > dataSize || t.Size > dataSize-t.Offset {
			return fmt.Errorf("tensor %q: data [%d, %d) of the data section runs past its end (%d bytes; file truncated?)",
				t.Name, t.Offset, t.Offset+t.Size, dataSize)
		}
	}
	order := make([]int, len(f.tensors))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return f.tensors[order[a]].Offset < f.tensors[order[b]].Offset })
	for i := 1; i < len(order); i++ {
		prev, cur := f.tensors[order[i-1]], f.tensors[order[i]]
		if prev.Size > 0 && cur.Size > 0 && prev.Offset+prev.Size > cur.Offset {
			return fmt.Errorf("tensors %q [%d, %d) and %q [%d, %d) overlap",
				prev.Name, prev.Offset, prev.Offset+prev.Size, cur.Name, cur.Offset, cur.Offset+cur.Size)
		}
	}
	return nil
}

// reader decodes little-endian values from data. Its errors give the byte
// position; callers add which key or tensor was being read.
type reader struct {
	data []byte
	off  int
}

func (r *reader) remaining() int { return len(r.data) - r.off }

func (r *reader) bytes(n uint64, what string) ([]byte, error) {
	if n > uint64(r.remaining()) {
		return nil, fmt.Errorf("at byte %d: %s needs %d bytes, only %d left (file truncated?)", r.off, what, n, r.remaining())
	}
	b := r.data[r.off : r.off+int(n)]
	r.off += int(n)
	return b, nil
}

func (r *reader) u8(what string) (uint8, error) {
	b, err := r.bytes(1, what)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (r *reader) u16(what string) (uint16, error) {
	b, err := r.bytes(2, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

func (r *reader) u32(what string) (uint32, error) {
	b, err := r.bytes(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (r *reader) u64(what string) (uint64, error) {
	b, err := r.bytes(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (r *reader) str(what string) (string, error) {
	at := r.off
	n, err := r.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > uint64(r.remaining()) {
		return "", fmt.Errorf("at byte %d: %s length %d exceeds the %d bytes left", at, what, n, r.remaining())
	}
	b, _ := r.bytes(n, what)
	return string(b), nil
}

// checkCount rejects a count of items that could not fit in the bytes left,
// given the fewest bytes one item takes, before anything is allocated for it.
func (r *reader) checkCount(n uint64, minSize int, what string) error {
	if minSize > 0 && n > uint64(r.remaining())/uint64(minSize) {
		return fmt.Errorf("at byte %d: %s %d cannot fit in the %d bytes left", r.off, what, n, r.remaining())
	}
	return nil
}

// typedValue reads a uint32 value type and the value.
func (r *reader) typedValue(depth int) (Value, error) {
	typ, err := r.u32("value type")
	if err != nil {
		return Value{}, err
	}
	return r.value(ValueType(typ), depth)
}

func (r *reader) value(t ValueType, depth int) (Value, error) {
	const what = "value"
	switch t {
	case TypeUint8:
		x, err := r.u8(what)
		return Value{typ: t, x: x}, err
	case TypeInt8:
		x, err := r.u8(what)
		return Value{typ: t, x: int8(x)}, err
	case TypeBool:
		at := r.off
		x, err := r.u8(what)
		if err == nil && x > 1 {
			err = fmt.Errorf("at byte %d: bool byte %d is neither 0 nor 1", at, x)
		}
		return Value{typ: t, x: x == 1}, err
	case TypeUint16:
		x, err := r.u16(what)
		return Value{typ: t, x: x}, err
	case TypeInt16:
		x, err := r.u16(what)
		return Value{typ: t, x: int16(x)}, err
	case TypeUint32:
		x, err := r.u32(what)
		return Value{typ: t, x: x}, err
	case TypeInt32:
		x, err := r.u32(what)
		return Value{typ: t, x: int32(x)}, err
	case TypeFloat32:
		x, err := r.u32(what)
		return Value{typ: t, x: math.Float32frombits(x)}, err
	case TypeUint64:
		x, err := r.u64(what)
		return Value{typ: t, x: x}, err
	case TypeInt64:
		x, err := r.u64(what)
		return Value{typ: t, x: int64(x)}, err
	case TypeFloat64:
		x, err := r.u64(what)
		return Value{typ: t, x: math.Float64frombits(x)}, err
	case TypeString:
		x, err := r.str("string")
		return Value{typ: t, x: x}, err
	case TypeArray:
		return r.array(depth)
	}
	return Value{}, fmt.Errorf("at byte %d: unknown value type %d", r.off-4, uint32(t))
}

func (r *reader) array(depth int) (Value, error) {
	if depth >= maxArrayDepth {
		return Value{}, fmt.Errorf("at byte %d: arrays nested deeper than %d", r.off, maxArrayDepth)
	}
	et, err := r.u32("array element type")
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	if !elem.valid() {
		return Value{}, fmt.Errorf("at byte %d: unknown array element type %d", r.off-4, et)
	}
	n, err := r.u64("array length")
	if err != nil {
		return Value{}, err
	}
	if err := r.checkCount(n, elem.minEncodedSize(), "array length"); err != nil {
		return Value{}, err
	}
	v := Value{typ: TypeArray, elem: elem}
	if elem == TypeArray || elem == TypeString || elem == TypeBool {
		return r.variableArray(v, n, depth)
	}
	raw, _ := r.bytes(n*uint64(elem.minEncodedSize()), "array")
	switch elem {
	case TypeUint8:
		v.x = append([]uint8(nil), raw...)
	case TypeInt8:
		v.x, err = decodeArray[int8](raw, n)
	case TypeUint16:
		v.x, err = decodeArray[uint16](raw, n)
	case TypeInt16:
		v.x, err = decodeArray[int16](raw, n)
	case TypeUint32:
		v.x, err = decodeArray[uint32](raw, n)
	case TypeInt32:
		v.x, err = decodeArray[int32](raw, n)
	case TypeFloat32:
		v.x, err = decodeArray[float32](raw, n)
	case TypeUint64:
		v.x, err = decodeArray[uint64](raw, n)
	case TypeInt64:
		v.x, err = decodeArray[int64](raw, n)
	case TypeFloat64:
		v.x, err = decodeArray[float64](raw, n)
	}
	if err != nil {
		return Value{}, fmt.Errorf("at byte %d: %w", r.off-len(raw), err)
	}
	return v, nil
}

// decodeArray decodes n little-endian fixed-size values from raw.
func decodeArray[T int8 | uint16 | int16 | uint32 | int32 | float32 | uint64 | int64 | float64](raw []byte, n uint64) ([]T, error) {
	x := make([]T, n)
	if _, err := binary.Decode(raw, binary.LittleEndian, x); err != nil {
		return nil, fmt.Errorf("array of %d values in %d bytes: %w", n, len(raw), err)
	}
	return x, nil
}

// variableArray reads arrays whose elements are decoded one at a time
// (strings, bools, nested arrays).
func (r *reader) variableArray(v Value, n uint64, depth int) (Value, error) {
	var err error
	var i int
	switch v.elem {
	case TypeString:
		x := make([]string, n)
		for i = range x {
			if x[i], err = r.str("string"); err != nil {
				break
			}
		}
		v.x = x
	case TypeBool:
		x := make([]bool, n)
		for i = range x {
			var e Value
			if e, err = r.value(TypeBool, depth); err != nil {
				break
			}
			x[i] = e.x.(bool)
		}
		v.x = x
	case TypeArray:
		x := make([]Value, n)
		for i = range x {
			if x[i], err = r.array(depth + 1); err != nil {
				break
			}
		}
		v.x = x
	}
	if err != nil {
		return Value{}, fmt.Errorf("element %d: %w", i, err)
	}
	return v, nil
}

func (r *reader) tensorInfo(i uint64) (TensorInfo, error) {
	name, err := r.str("name")
	if err != nil {
		return TensorInfo{}, fmt.Errorf("tensor %d: %w", i, err)
	}
	t, err := r.tensorShape(name)
	if err != nil {
		return TensorInfo{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	return t, nil
}

// tensorShape reads the rest of a tensor description after its name.
func (r *reader) tensorShape(name string) (TensorInfo, error) {
	nDims, err := r.u32("dimension count")
	if err != nil {
		return TensorInfo{}, err
	}
	if nDims > maxDims {
		return TensorInfo{}, fmt.Errorf("%d dimensions, at most %d allowed", nDims, maxDims)
	}
	t := TensorInfo{Name: name, Dims: make([]uint64, nDims)}
	elems := uint64(1)
	for d := range t.Dims {
		n, err := r.u64("dimension")
		if err != nil {
			return TensorInfo{}, err
		}
		if n > math.MaxInt64 {
			return TensorInfo{}, fmt.Errorf("dimension %d is %d, above 2^63-1", d, n)
		}
		t.Dims[d] = n
		hi, lo := bits.Mul64(elems, n)
		if hi != 0 || lo > math.MaxInt64 {
			return TensorInfo{}, fmt.Errorf("dims %v: element count overflows int64", t.Dims[:d+1])
		}
		elems = lo
	}
	typ, err := r.u32("type")
	if err != nil {
		return TensorInfo{}, err
	}
	t.Type = GGMLType(typ)
	blockElems, blockBytes, ok := t.Type.BlockSize()
	if !ok {
		return TensorInfo{}, fmt.Errorf("unknown ggml type %d", typ)
	}
	inner := uint64(1)
	if nDims > 0 {
		inner = t.Dims[0]
	}
	if inner%blockElems != 0 {
		return TensorInfo{}, fmt.Errorf("innermost dimension %d is not a multiple of the %v block size %d", inner, t.Type, blockElems)
	}
	hi, size := bits.Mul64(elems/blockElems, blockBytes)
	if hi != 0 || size > math.MaxInt64 {
		return TensorInfo{}, fmt.Errorf("byte size of %d %v elements overflows", elems, t.Type)
	}
	t.Size = size
	if t.Offset, err = r.u64("data offset"); err != nil {
		return TensorInfo{}, err
	}
	return t, nil
}
