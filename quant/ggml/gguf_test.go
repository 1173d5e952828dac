package ggml

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golora/golora/internal/gguf"
)

var update = flag.Bool("update", false, "rewrite testdata/written.gguf (then rerun ggmlref read, see testdata/README.md)")

// writtenGGUF builds, with our quantizers and gguf.Builder, the GGUF file
// that ggml's reader loaded to make testdata/written.ggml.f32: the golden
// input quantized by us to every type we write, ggml's blocks of the two we
// only read (Q2_K, Q3_K), and an F32 vector.
func writtenGGUF(t *testing.T) []byte {
	w := readFloats(t, "input.f32")
	var b gguf.Builder
	if err := b.AddKV("general.architecture", "golora-test"); err != nil {
		t.Fatal(err)
	}
	for _, typ := range quantizedTypes {
		m, err := Quantize(typ, w, goldenRows, goldenCols)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.AddMatrix("w."+typ.String(), gguf.GGMLType(typ), goldenRows, goldenCols, m.Blocks()); err != nil {
			t.Fatal(err)
		}
	}
	for _, typ := range []Type{Q2_K, Q3_K} {
		if err := b.AddMatrix("w."+typ.String(), gguf.GGMLType(typ), goldenRows, goldenCols, goldenBlocks(t, typ)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AddFloat32("norm", []int{5}, w[:5]); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestGGMLReadsOurGGUF checks that testdata/written.gguf is what our writer
// produces today, and that ggml's gguf_init_from_file loaded it to the same
// values our Matrix gives: ggml's dequantization of every tensor, in file
// order, is testdata/written.ggml.f32.
func TestGGMLReadsOurGGUF(t *testing.T) {
	path := filepath.Join("testdata", "written.gguf")
	data := writtenGGUF(t)
	if *update {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	committed, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, data) {
		t.Fatalf("%s differs from what the writer produces now: rerun with -update and regenerate written.ggml.f32 (testdata/README.md)", path)
	}
	f, err := gguf.Parse(committed)
	if err != nil {
		t.Fatal(err)
	}
	ggmlValues := readFloats(t, "written.ggml.f32")
	pos := 0
	for _, ti := range f.Tensors() {
		rows, cols, err := ti.RowsCols()
		if err != nil {
			t.Fatal(err)
		}
		var got []float32
		if ti.Type == gguf.TypeF32 {
			if got, err = f.TensorFloat32(ti.Name); err != nil {
				t.Fatal(err)
			}
		} else {
			raw, err := f.TensorBytes(ti.Name)
			if err != nil {
				t.Fatal(err)
			}
			m, err := New(ti.Name, Type(ti.Type), rows, cols, raw)
			if err != nil {
				t.Fatal(err)
			}
			got = make([]float32, rows*cols)
			if err := m.DequantizeRows(got, 0, rows); err != nil {
				t.Fatal(err)
			}
		}
		if pos+len(got) > len(ggmlValues) {
			t.Fatalf("ggml's dump ends inside tensor %q", ti.Name)
		}
		for i, v := range got {
			if math.Float32bits(v) != math.Float32bits(ggmlValues[pos+i]) {
				t.Fatalf("tensor %q element %d: ours %g, ggml read %g", ti.Name, i, v, ggmlValues[pos+i])
			}
		}
		pos += len(got)
	}
	if pos != len(ggmlValues) {
		t.Fatalf("ggml's dump has %d values, the file's tensors %d", len(ggmlValues), pos)
	}
}

// TestTypeNumbersMatchGGUF checks that Type uses the numbers of gguf.GGMLType
// and the same block layouts, so a loader can convert one to the other.
func TestTypeNumbersMatchGGUF(t *testing.T) {
	for _, typ := range goldenTypes {
		g := gguf.GGMLType(typ)
		if g.String() != strings.ToUpper(typ.String()) {
			t.Errorf("%v is gguf's %v", typ, g)
		}
		ge, gb, _ := g.BlockSize()
		e, b, _ := typ.BlockSize()
		if int(ge) != e || int(gb) != b {
			t.Errorf("%v: block %d elements in %d bytes, gguf says %d in %d", typ, e, b, ge, gb)
		}
	}
}

// TestGGUFTensorsAsMatrices wraps the block tensors of a GGUF file written by
// this package with New, as the model loader does, and compares their blocks
// with ggml's golden ones.
func TestGGUFTensorsAsMatrices(t *testing.T) {
	f, err := gguf.Open(filepath.Join("testdata", "written.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, typ := range goldenTypes {
		name := "w." + typ.String()
		ti, ok := f.Tensor(name)
		if !ok {
			t.Fatalf("%s not found", name)
		}
		rows, cols, err := ti.RowsCols()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := f.TensorBytes(name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := New(name, Type(ti.Type), rows, cols, raw)
		if err != nil {
			t.Fatal(err)
		}
		if r, c := m.Dims(); m.Type() != typ || r != goldenRows || c != goldenCols {
			t.Errorf("%v: got %v [%d, %d]", typ, m.Type(), r, c)
		}
		if !bytes.Equal(m.Blocks(), goldenBlocks(t, typ)) {
			t.Errorf("%v: blocks differ from ggml's", typ)
		}
	}
}

func TestParseType(t *testing.T) {
	for _, typ := range goldenTypes {
		for _, s := range []string{typ.String(), strings.ToUpper(typ.String()), strings.ToLower(typ.String())} {
			if got, err := ParseType(s); err != nil || got != typ {
				t.Errorf("ParseType(%q) = %v, %v", s, got, err)
			}
		}
	}
	if _, err := ParseType("iq2_xxs"); err == nil {
		t.Error("iq2_xxs accepted")
	}
}
