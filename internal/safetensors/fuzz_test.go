package safetensors

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// FuzzParse checks that Parse never panics, that its errors are
// *FormatError, and that whatever it accepts is consistent and survives a
// write and a re-read unchanged.
//
// The seeds are small pieces of the real PEFT file rather than the whole
// 3.7 MB: Go's fuzzer minimizes every new interesting input with a pass that
// is quadratic in its size, and with the whole file as a seed a 60-second run
// spent 54 seconds minimizing one mutant (execs stayed at 0/sec). The whole
// file is covered by TestRealAdapter and TestRealAdapterRewrite.
func FuzzParse(f *testing.F) {
	real, err := os.ReadFile(adapterPath)
	if err != nil {
		f.Fatal(err)
	}
	// The real file's first bytes: its length field and the start of its
	// JSON header, cut mid-entry.
	f.Add(real[:400])
	// A valid file with the real file's metadata and first two tensor names,
	// dtypes and leading values, the shapes cut down to 2×2.
	src, err := Parse(real)
	if err != nil {
		f.Fatal(err)
	}
	var small []Tensor
	for _, name := range src.Names()[:2] {
		t, _ := src.Tensor(name)
		small = append(small, Tensor{Name: t.Name, DType: t.DType, Shape: []int{2, 2}, Data: t.Data[:16]})
	}
	small = append(small,
		Tensor{Name: "b", DType: BF16, Shape: []int{1}, Data: BF16Bytes([]float32{1})},
		Tensor{Name: "e", DType: I64, Shape: []int{0, 3}})
	var buf bytes.Buffer
	if err := Write(&buf, small, src.Metadata()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(craft(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}`, make([]byte, 3)))
	f.Add(craft(`{"w":{"dtype":"F16","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil))
	f.Add(craft(`{"__metadata__":{"k":"v"}}`, nil))

	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is %T, want *FormatError", err, err)
			}
			return
		}
		var tensors []Tensor
		for _, name := range file.Names() {
			tensor, ok := file.Tensor(name)
			if !ok {
				t.Fatalf("name %q listed but not found", name)
			}
			if _, err := tensor.NumElements(); err != nil {
				t.Fatalf("accepted tensor is inconsistent: %v", err)
			}
			if isFloatDType(tensor.DType) {
				if _, err := tensor.Float32s(); err != nil {
					t.Fatal(err)
				}
			}
			tensors = append(tensors, tensor)
		}
		var buf bytes.Buffer
		if err := Write(&buf, tensors, file.Metadata()); err != nil {
			t.Fatalf("rewriting an accepted file: %v", err)
		}
		again, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("re-reading a rewritten file: %v", err)
		}
		assertSameTensors(t, again, tensors)
		if len(again.Metadata()) != len(file.Metadata()) {
			t.Fatalf("metadata changed from %v to %v", file.Metadata(), again.Metadata())
		}
		for k, v := range file.Metadata() {
			if again.Metadata()[k] != v {
				t.Fatalf("metadata changed from %v to %v", file.Metadata(), again.Metadata())
			}
		}
	})
}
