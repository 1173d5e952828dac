package gguf

import (
	"os"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts can
// be read back through every accessor without panicking.
func FuzzParse(f *testing.F) {
	real, err := os.ReadFile(realFile)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add(allTypesFile(f))
	f.Add(quantizedFile(f))
	if ours, err := os.ReadFile(ggmlReadFile); err == nil {
		f.Add(ours)
	} else {
		f.Fatal(err)
	}
	f.Add(header(2, 0).tensor("a", TypeF16, 0, 2, 2).tensor("b", TypeQ8_0, 32, 32).data(64))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		for _, kv := range file.KVs() {
			_, _ = file.String(kv.Key)
			_, _ = file.Int(kv.Key)
			_, _ = file.Float(kv.Key)
			_, _ = file.Bool(kv.Key)
			_, _ = file.Strings(kv.Key)
			_, _ = file.Float32s(kv.Key)
			_, _ = file.Int32s(kv.Key)
			_ = kv.Value.Len()
		}
		// Converting every tensor of the 1 MB seed on each run would slow the
		// fuzzer tenfold; the conversion is the same loop for every tensor,
		// so a budget of bytes per run keeps coverage and speed.
		budget := uint64(1 << 16)
		for _, ti := range file.Tensors() {
			raw, err := file.TensorBytes(ti.Name)
			if err != nil || uint64(len(raw)) != ti.Size {
				t.Fatalf("tensor %q: %d bytes, err %v; want %d bytes", ti.Name, len(raw), err, ti.Size)
			}
			_ = ti.Shape()
			if ti.Size > budget {
				continue
			}
			budget -= ti.Size
			if _, err := file.TensorFloat32(ti.Name); err != nil && (ti.Type == TypeF32 || ti.Type == TypeF16 || ti.Type == TypeBF16) {
				t.Fatalf("tensor %q: %v", ti.Name, err)
			}
		}
	})
}
