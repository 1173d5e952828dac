package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestFloat32sEveryFloatDType(t *testing.T) {
	// Values exactly representable in F16 and BF16, so every dtype gives them
	// back unchanged.
	values := []float32{0, 1, -2, 0.5, 3.5, -0.375, 256}
	for _, dtype := range []DType{F32, F16, BF16, F64} {
		tensor, err := FromFloat32("w", dtype, []int{7}, values)
		if err != nil {
			t.Fatal(err)
		}
		if len(tensor.Data) != 7*dtype.Size() {
			t.Fatalf("%s: %d bytes, want %d", dtype, len(tensor.Data), 7*dtype.Size())
		}
		got, err := tensor.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, values) {
			t.Errorf("%s: Float32s = %v, want %v", dtype, got, values)
		}
	}
}

func TestEncodingsAreLittleEndian(t *testing.T) {
	// 1.0 is 0x3F800000 in F32, 0x3C00 in F16, 0x3F80 in BF16, 0x3FF0000000000000 in F64.
	if got := Float32Bytes([]float32{1}); !bytes.Equal(got, []byte{0x00, 0x00, 0x80, 0x3F}) {
		t.Errorf("Float32Bytes(1) = % x", got)
	}
	if got := F16Bytes([]float32{1}); !bytes.Equal(got, []byte{0x00, 0x3C}) {
		t.Errorf("F16Bytes(1) = % x", got)
	}
	if got := BF16Bytes([]float32{1}); !bytes.Equal(got, []byte{0x80, 0x3F}) {
		t.Errorf("BF16Bytes(1) = % x", got)
	}
	f64, _ := FromFloat32("x", F64, nil, []float32{1})
	if !bytes.Equal(f64.Data, []byte{0, 0, 0, 0, 0, 0, 0xF0, 0x3F}) {
		t.Errorf("F64 of 1 = % x", f64.Data)
	}
}

func TestFloat32sRoundsF64(t *testing.T) {
	data := binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.1))
	got, err := Tensor{Name: "x", DType: F64, Shape: []int{1}, Data: data}.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != float32(0.1) {
		t.Errorf("got %v, want float32(0.1)", got[0])
	}
}

func TestFloat32sErrors(t *testing.T) {
	tests := []struct {
		tensor Tensor
		want   string
	}{
		{Tensor{Name: "ids", DType: I32, Shape: []int{1}, Data: make([]byte, 4)}, `tensor "ids": dtype I32 is not F32`},
		{Tensor{Name: "w", DType: F32, Shape: []int{2}, Data: make([]byte, 4)}, `tensor "w": dtype F32 with shape [2] does not match its 4 bytes`},
		{Tensor{Name: "w", DType: "X", Shape: []int{1}}, `unknown dtype "X"`},
		{Tensor{Name: "w", DType: F16, Shape: []int{-2}}, "negative dimension"},
	}
	for _, tt := range tests {
		if _, err := tt.tensor.Float32s(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Float32s of %s %v: err = %v, want one containing %q", tt.tensor.DType, tt.tensor.Shape, err, tt.want)
		}
	}
}

func TestFromFloat32Errors(t *testing.T) {
	if _, err := FromFloat32("w", I32, []int{1}, []float32{1}); err == nil {
		t.Error("FromFloat32 to I32 succeeded")
	}
	if _, err := FromFloat32("w", F32, []int{2, 2}, []float32{1, 2, 3}); err == nil || !strings.Contains(err.Error(), "does not have 3 elements") {
		t.Errorf("shape mismatch: err = %v", err)
	}
}

// EncodeFloat32 works in chunks; across chunk boundaries it must give the
// same bytes as the whole-slice encoders.
func TestEncodeFloat32MatchesBytes(t *testing.T) {
	values := make([]float32, 40000)
	for i := range values {
		values[i] = float32(i)*0.37 - 5000
	}
	for dtype, want := range map[DType][]byte{F32: Float32Bytes(values), F16: F16Bytes(values), BF16: BF16Bytes(values)} {
		var buf bytes.Buffer
		if err := EncodeFloat32(&buf, dtype, values); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s: EncodeFloat32 differs from the whole-slice encoding", dtype)
		}
	}
	if err := EncodeFloat32(&bytes.Buffer{}, U8, values); err == nil {
		t.Error("EncodeFloat32 to U8 succeeded")
	}
}

func TestDTypeSize(t *testing.T) {
	want := map[DType]int{BOOL: 1, U8: 1, I8: 1, F8E5M2: 1, F8E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8}
	for _, d := range DTypes() {
		if d.Size() != want[d] {
			t.Errorf("%s.Size() = %d, want %d", d, d.Size(), want[d])
		}
	}
	if len(DTypes()) != len(want) {
		t.Errorf("DTypes() has %d entries, want %d", len(DTypes()), len(want))
	}
	if DType("F4").Size() != 0 {
		t.Error(`DType("F4").Size() != 0`)
	}
}
