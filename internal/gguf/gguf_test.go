package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/golora/golora/internal/half"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const realFile = "testdata/stories260K.gguf"

func TestParseRealFile(t *testing.T) {
	f, err := Open(realFile)
	require.NoError(t, err)
	defer f.Close()

	// Expected values are those the fixtures README and llama.cpp's converter
	// give for this file: 48 F32 tensors, dim 64, 5 blocks, 8/4 heads, 512 tokens.
	assert.Equal(t, uint32(3), f.Version)
	assert.Equal(t, uint64(DefaultAlignment), f.Alignment)
	assert.Len(t, f.Tensors(), 48)

	arch, err := f.String("general.architecture")
	require.NoError(t, err)
	assert.Equal(t, "llama", arch)
	for key, want := range map[string]int64{
		"llama.embedding_length":        64,
		"llama.feed_forward_length":     172,
		"llama.block_count":             5,
		"llama.attention.head_count":    8,
		"llama.attention.head_count_kv": 4,
		"llama.context_length":          2048,
		"tokenizer.ggml.bos_token_id":   1,
		"tokenizer.ggml.eos_token_id":   2,
	} {
		got, err := f.Int(key)
		require.NoError(t, err, key)
		assert.Equal(t, want, got, key)
	}
	eps, err := f.Float("llama.attention.layer_norm_rms_epsilon")
	require.NoError(t, err)
	assert.InDelta(t, 1e-5, eps, 1e-12)

	tokens, err := f.Strings("tokenizer.ggml.tokens")
	require.NoError(t, err)
	require.Len(t, tokens, 512)
	assert.Equal(t, []string{"<unk>", "<s>", "</s>", "<0x00>"}, tokens[:4])
	types, err := f.Int32s("tokenizer.ggml.token_type")
	require.NoError(t, err)
	require.Len(t, types, 512)
	scores, err := f.Float32s("tokenizer.ggml.scores")
	require.NoError(t, err)
	require.Len(t, scores, 512)

	for _, ti := range f.Tensors() {
		assert.Equal(t, TypeF32, ti.Type, ti.Name)
		assert.Zero(t, ti.Offset%f.Alignment, ti.Name)
	}
	q, ok := f.Tensor("blk.3.attn_k.weight")
	require.True(t, ok)
	assert.Equal(t, []uint64{64, 32}, q.Dims)
	assert.Equal(t, []int{32, 64}, q.Shape())

	emb, err := f.TensorFloat32("token_embd.weight")
	require.NoError(t, err)
	require.Len(t, emb, 512*64)
	raw, err := f.TensorBytes("token_embd.weight")
	require.NoError(t, err)
	for i := range emb {
		require.Equal(t, math.Float32bits(emb[i]), binary.LittleEndian.Uint32(raw[4*i:]))
	}

	_, err = f.TensorFloat32("no.such.tensor")
	assert.ErrorContains(t, err, `"no.such.tensor" not found`)

	require.NoError(t, f.Close())
	_, err = f.TensorBytes("token_embd.weight")
	assert.ErrorContains(t, err, "closed")
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(filepath.Join(dir, "missing.gguf"))
	assert.Error(t, err)

	empty := filepath.Join(dir, "empty.gguf")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	_, err = Open(empty)
	assert.ErrorContains(t, err, "empty.gguf")

	junk := filepath.Join(dir, "junk.gguf")
	require.NoError(t, os.WriteFile(junk, []byte("PK\x03\x04 not a gguf file"), 0o644))
	_, err = Open(junk)
	assert.ErrorContains(t, err, "junk.gguf")
	assert.ErrorContains(t, err, "bad magic")
}

// allTypesFile builds a small file with one metadata value of every type, a
// nested array, and F32, F16, BF16 and Q4_0 tensors.
func allTypesFile(t testing.TB) []byte {
	t.Helper()
	var b Builder
	inner1, err := NewValue([]uint32{1, 2})
	require.NoError(t, err)
	inner2, err := NewValue([]string{"x"})
	require.NoError(t, err)
	kvs := []struct {
		key string
		val any
	}{
		{"u8", uint8(200)}, {"i8", int8(-100)}, {"u16", uint16(60000)}, {"i16", int16(-30000)},
		{"u32", uint32(4000000000)}, {"i32", int32(-2000000000)}, {"f32", float32(1.5)},
		{"bool", true}, {"str", "héllo"}, {"u64", uint64(math.MaxUint64)}, {"i64", int64(math.MinInt64)},
		{"f64", 2.25},
		{"a.u8", []uint8{1, 2}}, {"a.i8", []int8{-1}}, {"a.u16", []uint16{7}}, {"a.i16", []int16{-7}},
		{"a.u32", []uint32{3, 4}}, {"a.i32", []int32{-5, 6}}, {"a.f32", []float32{0.5, -0.25}},
		{"a.bool", []bool{true, false}}, {"a.str", []string{"a", "", "ccc"}}, {"a.u64", []uint64{9}},
		{"a.i64", []int64{-9}}, {"a.f64", []float64{0.125}},
		{"a.nested", []Value{inner1, inner2}},
		{AlignmentKey, uint32(64)},
	}
	for _, kv := range kvs {
		require.NoError(t, b.AddKV(kv.key, kv.val))
	}
	require.NoError(t, b.AddFloat32("f32.weight", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}))
	half := []uint16{0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x8000}
	raw := make([]byte, 2*len(half))
	for i, h := range half {
		binary.LittleEndian.PutUint16(raw[2*i:], h)
	}
	require.NoError(t, b.AddTensor("f16.weight", TypeF16, []uint64{4, 2}, raw))
	bf := []byte{0x80, 0x3f, 0x20, 0xc1} // 0x3f80, 0xc120 little-endian
	require.NoError(t, b.AddTensor("bf16.weight", TypeBF16, []uint64{2}, bf))
	require.NoError(t, b.AddTensor("q4.weight", TypeQ4_0, []uint64{32}, make([]byte, 18)))
	var buf bytes.Buffer
	_, err = b.WriteTo(&buf)
	require.NoError(t, err)
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	f, err := Parse(allTypesFile(t))
	require.NoError(t, err)
	assert.Equal(t, uint64(64), f.Alignment)
	assert.Zero(t, f.DataOffset%64)

	want := map[string]any{
		"u8": uint8(200), "i8": int8(-100), "u16": uint16(60000), "i16": int16(-30000),
		"u32": uint32(4000000000), "i32": int32(-2000000000), "f32": float32(1.5), "bool": true,
		"str": "héllo", "u64": uint64(math.MaxUint64), "i64": int64(math.MinInt64), "f64": 2.25,
		"a.u8": []uint8{1, 2}, "a.i8": []int8{-1}, "a.u16": []uint16{7}, "a.i16": []int16{-7},
		"a.u32": []uint32{3, 4}, "a.i32": []int32{-5, 6}, "a.f32": []float32{0.5, -0.25},
		"a.bool": []bool{true, false}, "a.str": []string{"a", "", "ccc"}, "a.u64": []uint64{9},
		"a.i64": []int64{-9}, "a.f64": []float64{0.125},
	}
	for key, w := range want {
		v, ok := f.Lookup(key)
		require.True(t, ok, key)
		assert.Equal(t, w, v.Interface(), key)
	}
	nested, ok := f.Lookup("a.nested")
	require.True(t, ok)
	assert.Equal(t, TypeArray, nested.ElemType())
	inner := nested.Interface().([]Value)
	require.Len(t, inner, 2)
	assert.Equal(t, []uint32{1, 2}, inner[0].Interface())
	assert.Equal(t, []string{"x"}, inner[1].Interface())

	// Typed getters convert between integer widths, and name the key when
	// the type is wrong or the key is missing.
	n, err := f.Int("u16")
	require.NoError(t, err)
	assert.Equal(t, int64(60000), n)
	_, err = f.Int("u64")
	assert.ErrorContains(t, err, `"u64"`)
	_, err = f.Int("str")
	assert.ErrorContains(t, err, `metadata key "str": has type string, want an integer`)
	_, err = f.String("nope")
	assert.True(t, errors.Is(err, ErrKeyNotFound))
	assert.ErrorContains(t, err, `"nope"`)
	_, err = f.Strings("a.u32")
	assert.ErrorContains(t, err, "has type array of uint32, want array of string")
	i32s, err := f.Int32s("a.u32")
	require.NoError(t, err)
	assert.Equal(t, []int32{3, 4}, i32s)
	_, err = f.Int32s("a.u64")
	require.NoError(t, err)
	_, err = f.Int32s("a.f32")
	assert.ErrorContains(t, err, `"a.f32"`)
	f32s, err := f.Float32s("a.f64")
	require.NoError(t, err)
	assert.Equal(t, []float32{0.125}, f32s)
	fl, err := f.Float("f32")
	require.NoError(t, err)
	assert.Equal(t, 1.5, fl)
	bo, err := f.Bool("bool")
	require.NoError(t, err)
	assert.True(t, bo)

	got, err := f.TensorFloat32("f32.weight")
	require.NoError(t, err)
	assert.Equal(t, []float32{1, 2, 3, 4, 5, 6}, got)
	ti, _ := f.Tensor("f32.weight")
	assert.Equal(t, []uint64{3, 2}, ti.Dims)
	assert.Equal(t, []int{2, 3}, ti.Shape())

	// Binary16 values from the IEEE 754 definition: 1, -2, the largest
	// finite half 65504, the smallest subnormal 2⁻²⁴, the largest subnormal
	// 1023·2⁻²⁴, +Inf, -Inf, -0.
	f16, err := f.TensorFloat32("f16.weight")
	require.NoError(t, err)
	wantF16 := []float32{1, -2, 65504, float32(math.Ldexp(1, -24)), float32(math.Ldexp(1023, -24)),
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Copysign(0, -1))}
	for i := range wantF16 {
		assert.Equal(t, math.Float32bits(wantF16[i]), math.Float32bits(f16[i]), "f16 element %d", i)
	}
	bf16, err := f.TensorFloat32("bf16.weight")
	require.NoError(t, err)
	assert.Equal(t, []float32{1, -10}, bf16) // 0x3f80 = 1.0, 0xc120 = -10.0

	_, err = f.TensorFloat32("q4.weight")
	assert.ErrorContains(t, err, `tensor "q4.weight" has type Q4_0`)
}

func TestFloat16NaN(t *testing.T) {
	assert.True(t, math.IsNaN(float64(half.F16ToFloat32(0x7e00))))
	assert.True(t, math.IsNaN(float64(half.F16ToFloat32(0xfc01))))
}

// enc appends little-endian GGUF primitives, for hand-made malformed files.
type enc struct{ b []byte }

func (e *enc) u32(x uint32) *enc { e.b = binary.LittleEndian.AppendUint32(e.b, x); return e }
func (e *enc) u64(x uint64) *enc { e.b = binary.LittleEndian.AppendUint64(e.b, x); return e }
func (e *enc) str(s string) *enc { e.u64(uint64(len(s))); e.b = append(e.b, s...); return e }
func (e *enc) raw(p ...byte) *enc {
	e.b = append(e.b, p...)
	return e
}
func header(nTensors, nKV uint64) *enc {
	e := &enc{}
	return e.raw([]byte(Magic)...).u32(3).u64(nTensors).u64(nKV)
}

// tensor appends a tensor description.
func (e *enc) tensor(name string, typ GGMLType, offset uint64, dims ...uint64) *enc {
	e.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		e.u64(d)
	}
	return e.u32(uint32(typ)).u64(offset)
}

// data pads to 32 bytes and appends n zero bytes of tensor data.
func (e *enc) data(n int) []byte {
	for len(e.b)%32 != 0 {
		e.b = append(e.b, 0)
	}
	return append(e.b, make([]byte, n)...)
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "magic needs 4 bytes"},
		{"bad magic", []byte("GGML\x03\x00\x00\x00"), "bad magic"},
		{"version 1", (&enc{}).raw([]byte(Magic)...).u32(1).b, "unsupported version 1"},
		{"big endian", (&enc{}).raw([]byte(Magic)...).u32(3 << 24).b, "big-endian"},
		{"truncated counts", (&enc{}).raw([]byte(Magic)...).u32(3).u64(0).b, "metadata count needs 8 bytes"},
		{"huge kv count", header(0, 1<<60).b, "metadata count 1152921504606846976 cannot fit"},
		{"huge tensor count", header(1<<40, 0).b, "tensor count 1099511627776 cannot fit"},
		{"huge key length", header(0, 1).u64(1 << 62).raw(make([]byte, 16)...).b, "key length 4611686018427387904 exceeds"},
		{"unknown value type", header(0, 1).str("k").u32(13).b, `metadata key "k": at byte 33: unknown value type 13`},
		{"truncated value", header(0, 1).str("k").u32(uint32(TypeUint64)).u32(0).b, `metadata key "k": at byte 37: value needs 8 bytes, only 4 left`},
		{"bad bool", header(0, 1).str("k").u32(uint32(TypeBool)).raw(7).b, "bool byte 7"},
		{"huge array", header(0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeUint32)).u64(1 << 61).b,
			`metadata key "k": at byte 49: array length 2305843009213693952 cannot fit`},
		{"bad array elem type", header(0, 1).str("k").u32(uint32(TypeArray)).u32(99).u64(0).b,
			"unknown array element type 99"},
		{"huge string in array", header(0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(1).u64(100).b,
			`metadata key "k": element 0: at byte 49: string length 100 exceeds the 0 bytes left`},
		{"duplicate key", header(0, 2).str("k").u32(uint32(TypeUint8)).raw(1).str("k").u32(uint32(TypeUint8)).raw(2).b,
			`metadata key "k" appears twice`},
		{"alignment type", header(0, 1).str(AlignmentKey).u32(uint32(TypeString)).str("x").b,
			`"general.alignment": has type string, want an integer`},
		{"alignment not power of two", header(0, 1).str(AlignmentKey).u32(uint32(TypeUint32)).u32(48).b,
			"48 is not a power of two"},
		{"too many dims", header(1, 0).tensor("t", TypeF32, 0, 1, 1, 1, 1, 1).data(4), `tensor "t": 5 dimensions`},
		{"dims overflow", header(1, 0).tensor("t", TypeF32, 0, 1<<32, 1<<32).data(4), `tensor "t": dims [4294967296 4294967296]: element count overflows`},
		{"dim above int64", header(1, 0).tensor("t", TypeF32, 0, 1<<63).data(4), "above 2^63-1"},
		{"unknown ggml type", header(1, 0).tensor("t", 4, 0, 1).data(4), `tensor "t": unknown ggml type 4`},
		{"partial block", header(1, 0).tensor("t", TypeQ4_0, 0, 33).data(64), "not a multiple of the Q4_0 block size 32"},
		{"byte size overflow", header(1, 0).tensor("t", TypeF64, 0, 1<<62).data(4), "byte size"},
		{"misaligned offset", header(1, 0).tensor("t", TypeF32, 4, 1).data(64), `tensor "t": data offset 4 is not a multiple of the alignment 32`},
		{"out of range", header(1, 0).tensor("t", TypeF32, 0, 16).data(60), `tensor "t": data [0, 64) of the data section runs past its end (60 bytes`},
		{"offset out of range", header(1, 0).tensor("t", TypeF32, 1<<40, 1).data(60), `tensor "t": data [1099511627776, 1099511627780)`},
		{"overlap", header(2, 0).tensor("a", TypeF32, 0, 16).tensor("b", TypeF32, 32, 16).data(96), `tensors "a" [0, 64) and "b" [32, 96) overlap`},
		{"duplicate tensor", header(2, 0).tensor("a", TypeF32, 0, 1).tensor("a", TypeF32, 32, 1).data(64), `tensor "a" appears twice`},
		{"data section missing", header(1, 0).tensor("t", TypeF32, 0, 1).b, "past the end"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse(c.data)
			assert.Nil(t, f)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.True(t, strings.HasPrefix(err.Error(), "gguf: "), err.Error())
		})
	}
}

func TestNestingDepthLimit(t *testing.T) {
	e := header(0, 1).str("deep").u32(uint32(TypeArray))
	for range maxArrayDepth + 1 {
		e.u32(uint32(TypeArray)).u64(1)
	}
	e.u32(uint32(TypeUint8)).u64(0)
	_, err := Parse(e.b)
	assert.ErrorContains(t, err, "nested deeper than 16")
}

func TestEmptyTensorAndNoTensors(t *testing.T) {
	f, err := Parse(header(0, 0).b)
	require.NoError(t, err)
	assert.Empty(t, f.Tensors())

	f, err = Parse(header(2, 0).tensor("empty", TypeF32, 0, 0, 5).tensor("one", TypeF32, 0, 1).data(4))
	require.NoError(t, err)
	got, err := f.TensorFloat32("empty")
	require.NoError(t, err)
	assert.Empty(t, got)
}

// Every strict prefix of a valid file that cuts into the header or tensor
// data must be rejected with an error, not a panic.
func TestTruncatedPrefixes(t *testing.T) {
	full := allTypesFile(t)
	f, err := Parse(full)
	require.NoError(t, err)
	end := uint64(0)
	for _, ti := range f.Tensors() {
		end = max(end, f.DataOffset+ti.Offset+ti.Size)
	}
	for n := range int(end) {
		_, err := Parse(full[:n])
		require.Error(t, err, "prefix of %d bytes", n)
	}
}

func TestBuilderErrors(t *testing.T) {
	var b Builder
	require.NoError(t, b.AddKV("k", uint8(1)))
	assert.ErrorContains(t, b.AddKV("k", uint8(1)), "added twice")
	assert.ErrorContains(t, b.AddKV("x", struct{}{}), "no metadata type")
	assert.ErrorContains(t, b.AddKV(AlignmentKey, uint32(3)), "power of two")
	_, err := NewValue([]Value{{typ: TypeUint8, x: uint8(1)}})
	assert.ErrorContains(t, err, "element 0 is a uint8")
	assert.ErrorContains(t, b.AddFloat32("t", []int{2, 2}, []float32{1}), "4 bytes of data, want 4 F32 elements")
	require.NoError(t, b.AddFloat32("t", []int{1}, []float32{1}))
	assert.ErrorContains(t, b.AddFloat32("t", []int{1}, []float32{1}), "added twice")
	assert.ErrorContains(t, b.AddTensor("u", 5, []uint64{1}, nil), "unknown ggml type 5")
}

// TestReadData: ReadData of any part of a tensor gives the same bytes as
// TensorBytes, for a File from Open (read from the file) and from Parse.
func TestReadData(t *testing.T) {
	f, err := Open(realFile)
	require.NoError(t, err)
	defer f.Close()
	raw, err := os.ReadFile(realFile)
	require.NoError(t, err)
	p, err := Parse(raw)
	require.NoError(t, err)
	for _, file := range []*File{f, p} {
		for _, ti := range file.Tensors()[:6] {
			d, err := file.TensorBytes(ti.Name)
			require.NoError(t, err)
			for _, r := range [][2]int{{0, len(d)}, {3, len(d) - 1}, {len(d) / 2, len(d)/2 + 2}} {
				dst := make([]byte, r[1]-r[0])
				require.NoError(t, file.ReadData(dst, d[r[0]:r[1]]))
				require.Equal(t, d[r[0]:r[1]], dst, "%s [%d, %d)", ti.Name, r[0], r[1])
			}
		}
	}
}
