package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const adapterPath = "testdata/adapter_model.safetensors"

func TestRealAdapter(t *testing.T) {
	f, err := Open(adapterPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	names := f.Names()
	if len(names) != 120 || f.Len() != 120 {
		t.Fatalf("got %d tensors (Len %d), want 120", len(names), f.Len())
	}
	if md := f.Metadata(); len(md) != 1 || md["format"] != "pt" {
		t.Errorf("metadata = %v, want map[format:pt]", md)
	}
	re := regexp.MustCompile(`^base_model\.model\.model\.layers\.(\d+)\.self_attn\.([qv])_proj\.lora_([AB])\.weight$`)
	counts := map[string]int{}
	for _, name := range names {
		m := re.FindStringSubmatch(name)
		if m == nil {
			t.Fatalf("unexpected tensor name %q", name)
		}
		tensor, ok := f.Tensor(name)
		if !ok {
			t.Fatalf("Tensor(%q) not found", name)
		}
		if tensor.DType != F32 {
			t.Errorf("%s: dtype %s, want F32", name, tensor.DType)
		}
		var want []int
		switch {
		case m[3] == "A":
			want = []int{16, 576}
		case m[2] == "q":
			want = []int{576, 16}
		default:
			want = []int{192, 16}
		}
		if !slices.Equal(tensor.Shape, want) {
			t.Errorf("%s: shape %v, want %v", name, tensor.Shape, want)
		}
		values, err := tensor.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(values, func(v float32) bool { return v != 0 }) {
			t.Errorf("%s: all zero, want trained non-zero values", name)
		}
		counts[m[2]+m[3]]++
	}
	for _, k := range []string{"qA", "qB", "vA", "vB"} {
		if counts[k] != 30 {
			t.Errorf("%d tensors of kind %s, want 30", counts[k], k)
		}
	}

	// Golden values read from the file independently with Python's struct
	// module (struct.unpack('<f', ...) at the header's data_offsets).
	golden := []struct {
		name        string
		first, last float32
	}{
		{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", -0.300185889005661, -0.6047652959823608},
		{"base_model.model.model.layers.29.self_attn.v_proj.lora_B.weight", -0.14623518288135529, -0.007097513880580664},
	}
	for _, g := range golden {
		tensor, _ := f.Tensor(g.name)
		values, err := tensor.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if values[0] != g.first || values[len(values)-1] != g.last {
			t.Errorf("%s: first, last = %v, %v; want %v, %v", g.name, values[0], values[len(values)-1], g.first, g.last)
		}
	}
}

// Writing the tensors of the PEFT file back in Names() order with the same
// metadata must reproduce the file byte for byte: same JSON layout, same
// padding, same offsets as the reference (Rust) writer.
func TestRealAdapterRewrite(t *testing.T) {
	orig, err := os.ReadFile(adapterPath)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(orig)
	if err != nil {
		t.Fatal(err)
	}
	var tensors []Tensor
	for _, name := range f.Names() {
		tensor, _ := f.Tensor(name)
		tensors = append(tensors, tensor)
	}
	path := filepath.Join(t.TempDir(), "rewritten.safetensors")
	if err := WriteFile(path, tensors, f.Metadata()); err != nil {
		t.Fatal(err)
	}
	rewritten, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rewritten, orig) {
		t.Errorf("rewritten file differs from the original (%d vs %d bytes)", len(rewritten), len(orig))
	}
	g, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	assertSameTensors(t, g, tensors)
}

func assertSameTensors(t *testing.T, f *File, want []Tensor) {
	t.Helper()
	if f.Len() != len(want) {
		t.Fatalf("file holds %d tensors, want %d", f.Len(), len(want))
	}
	for _, w := range want {
		got, ok := f.Tensor(w.Name)
		if !ok {
			t.Fatalf("tensor %q missing", w.Name)
		}
		if got.DType != w.DType || !slices.Equal(got.Shape, w.Shape) || !bytes.Equal(got.Data, w.Data) {
			t.Errorf("tensor %q: got %s %v (%d bytes), want %s %v (%d bytes)",
				w.Name, got.DType, got.Shape, len(got.Data), w.DType, w.Shape, len(w.Data))
		}
	}
}

func TestRoundTripEveryDType(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := [][]int{{}, {3}, {2, 3}, {2, 0, 4}, {1, 2, 3, 2}}
	var tensors []Tensor
	for _, dtype := range DTypes() {
		for i, shape := range shapes {
			n := 1
			for _, d := range shape {
				n *= d
			}
			data := make([]byte, n*dtype.Size())
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			tensors = append(tensors, Tensor{Name: fmt.Sprintf("%s.%d", dtype, i), DType: dtype, Shape: shape, Data: data})
		}
	}
	// Write in a shuffled order: offsets follow the order given.
	rng.Shuffle(len(tensors), func(i, j int) { tensors[i], tensors[j] = tensors[j], tensors[i] })
	metadata := map[string]string{"format": "pt", "note": `quotes " and <html> & unicode é`}

	var buf bytes.Buffer
	if err := Write(&buf, tensors, metadata); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	assertSameTensors(t, f, tensors)
	if got := f.Metadata(); len(got) != 2 || got["note"] != metadata["note"] || got["format"] != "pt" {
		t.Errorf("metadata = %v, want %v", got, metadata)
	}
	// Names come back in offset order, which is the order written, except that
	// empty tensors sharing an offset are ordered by name.
	var nonEmpty []string
	for _, tensor := range tensors {
		if len(tensor.Data) > 0 {
			nonEmpty = append(nonEmpty, tensor.Name)
		}
	}
	var gotNonEmpty []string
	for _, name := range f.Names() {
		if tensor, _ := f.Tensor(name); len(tensor.Data) > 0 {
			gotNonEmpty = append(gotNonEmpty, name)
		}
	}
	if !slices.Equal(gotNonEmpty, nonEmpty) {
		t.Errorf("Names() order = %v, want %v", gotNonEmpty, nonEmpty)
	}

	path := filepath.Join(t.TempDir(), "all.safetensors")
	if err := WriteFile(path, tensors, metadata); err != nil {
		t.Fatal(err)
	}
	g, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	assertSameTensors(t, g, tensors)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, ok := g.Tensor(tensors[0].Name); ok {
		t.Error("Tensor after Close reported a tensor")
	}
}

func TestHeaderLayout(t *testing.T) {
	tensors := []Tensor{{Name: "a<b>&c", DType: U8, Shape: []int{3}, Data: []byte{1, 2, 3}}}
	var buf bytes.Buffer
	if err := Write(&buf, tensors, nil); err != nil {
		t.Fatal(err)
	}
	out := buf.Bytes()
	n := binary.LittleEndian.Uint64(out)
	header := string(out[8 : 8+n])
	want := `{"a<b>&c":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}`
	if strings.TrimRight(header, " ") != want {
		t.Errorf("header = %q, want %q padded with spaces", header, want)
	}
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	if !bytes.Equal(out[8+n:], []byte{1, 2, 3}) {
		t.Errorf("data = %v, want [1 2 3]", out[8+n:])
	}
}

func TestTensorDataIsCapped(t *testing.T) {
	tensors := []Tensor{
		{Name: "a", DType: U8, Shape: []int{2}, Data: []byte{1, 2}},
		{Name: "b", DType: U8, Shape: []int{2}, Data: []byte{3, 4}},
	}
	var buf bytes.Buffer
	if err := Write(&buf, tensors, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Tensor("a")
	_ = append(a.Data, 99)
	a.Shape[0] = 7
	b, _ := f.Tensor("b")
	if !bytes.Equal(b.Data, []byte{3, 4}) {
		t.Errorf("appending to a's Data changed b to %v", b.Data)
	}
	if a2, _ := f.Tensor("a"); a2.Shape[0] != 2 {
		t.Errorf("changing a returned Shape changed the file's shape to %v", a2.Shape)
	}
}

// craft builds a file from a literal header and data section.
func craft(header string, body []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(out, header...)
	return append(out, body...)
}

func TestHostileInput(t *testing.T) {
	eight := make([]byte, 8)
	lengthOnly := func(n uint64) []byte { return binary.LittleEndian.AppendUint64(nil, n) }
	tests := []struct {
		name   string
		data   []byte
		tensor string // tensor the error must be about, if any
		want   string // substring of the error
	}{
		{"short file", []byte{1, 2, 3}, "", "shorter than the 8-byte header length"},
		{"header longer than file", append(lengthOnly(100), "{}"...), "", "header length 100 exceeds the 2 bytes"},
		{"absurd header length", lengthOnly(1 << 40), "", "exceeds the limit"},
		{"header length 2^64-1", lengthOnly(math.MaxUint64), "", "exceeds the limit"},
		{"invalid JSON", craft(`{"a":`, nil), "", "invalid header"},
		{"header not an object", craft(`[1,2]`, nil), "", "not a JSON object"},
		{"trailing garbage", craft(`{} {}`, nil), "", "trailing data"},
		{"invalid UTF-8", craft("{\"\xff\":1}", nil), "", "not valid UTF-8"},
		{"empty name", craft(`{"":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`, nil), "", "empty name"},
		{"entry not an object", craft(`{"w":[1]}`, nil), "w", "not a JSON object"},
		{"entry null", craft(`{"w":null}`, nil), "w", "not a JSON object"},
		{"missing dtype", craft(`{"w":{"shape":[1],"data_offsets":[0,4]}}`, eight[:4]), "w", "dtype is missing"},
		{"missing shape", craft(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, eight[:4]), "w", "shape is missing"},
		{"missing offsets", craft(`{"w":{"dtype":"F32","shape":[1]}}`, eight[:4]), "w", "data_offsets is missing"},
		{"dtype not a string", craft(`{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, eight[:4]), "w", "invalid entry"},
		{"unknown dtype", craft(`{"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}`, eight[:4]), "w", `unknown dtype "Q4"`},
		{"negative dimension", craft(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, eight[:4]), "w", "negative dimension"},
		{"fractional dimension", craft(`{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, eight[:4]), "w", "invalid entry"},
		{"dimension beyond int64", craft(`{"w":{"dtype":"F32","shape":[1e30],"data_offsets":[0,4]}}`, eight[:4]), "w", "invalid entry"},
		// 2^32·2^32·2^32·4 wraps to 0 in 64-bit arithmetic; it must not be
		// mistaken for an empty tensor.
		{"size overflow", craft(`{"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,0]}}`, nil), "w", "larger than the whole"},
		{"size mismatch", craft(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}`, eight), "w", "is 4 bytes but data_offsets [0, 8] span 8"},
		{"offsets past the data", craft(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, eight[:4]), "w", "run past the 4-byte data section"},
		{"begin after end", craft(`{"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`, eight[:4]), "w", "begin after they end"},
		{"negative offset", craft(`{"w":{"dtype":"U8","shape":[0],"data_offsets":[-4,0]}}`, eight[:4]), "w", "negative"},
		{"three offsets", craft(`{"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4,8]}}`, eight[:4]), "w", "has 3 values, want 2"},
		{"overlap", craft(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}`, eight[:6]), "b", `overlap tensor "a"`},
		{"same range twice", craft(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, eight[:4]), "b", `overlap tensor "a"`},
		{"gap", craft(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}`, eight[:6]), "b", "gap of 2 bytes"},
		{"trailing bytes", craft(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, eight[:5]), "", "data section is 5 bytes but the tensors cover only 2"},
		{"duplicate name", craft(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, eight[:4]), "a", "occurs twice"},
		{"metadata not an object", craft(`{"__metadata__":["x"]}`, nil), "", "invalid __metadata__: not a JSON object"},
		{"metadata null", craft(`{"__metadata__":null}`, nil), "", "invalid __metadata__: not a JSON object"},
		{"metadata number value", craft(`{"__metadata__":{"epoch":3}}`, nil), "", `value of "epoch" is not a string`},
		{"metadata null value", craft(`{"__metadata__":{"epoch":null}}`, nil), "", `value of "epoch" is null`},
		{"metadata duplicate key", craft(`{"__metadata__":{"k":"a","k":"b"}}`, nil), "", `duplicate key "k"`},
		{"metadata twice", craft(`{"__metadata__":{},"__metadata__":{}}`, nil), metadataKey, "occurs twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.data)
			if err == nil {
				t.Fatalf("Parse succeeded, want an error containing %q", tt.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is %T, want *FormatError", err, err)
			}
			if fe.Tensor != tt.tensor {
				t.Errorf("error %q is about tensor %q, want %q", err, fe.Tensor, tt.tensor)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestOpenErrorNamesFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.safetensors")
	data := craft(`{"weight":{"dtype":"F32","shape":[3],"data_offsets":[0,4]}}`, make([]byte, 4))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if err == nil {
		t.Fatal("Open succeeded on a bad file")
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `tensor "weight"`) {
		t.Errorf("error %q does not name both the file and the tensor", err)
	}

	empty := filepath.Join(dir, "empty.safetensors")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(empty); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("Open of an empty file: err = %v, want an error naming it", err)
	}
	if _, err := Open(filepath.Join(dir, "missing.safetensors")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing file: err = %v, want not-exist", err)
	}
	if _, err := Open(dir); err == nil {
		t.Error("Open of a directory succeeded")
	}
}

// A shape with a zero dimension is empty however large its other dimensions.
func TestEmptyTensorWithHugeDims(t *testing.T) {
	data := craft(`{"w":{"dtype":"F64","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]}}`, nil)
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := f.Tensor("w")
	if n, err := w.NumElements(); err != nil || n != 0 {
		t.Errorf("NumElements = %d, %v; want 0, nil", n, err)
	}
}

func TestWriteValidation(t *testing.T) {
	ok := Tensor{Name: "ok", DType: F32, Shape: []int{2}, Data: make([]byte, 8)}
	tests := []struct {
		name    string
		tensors []Tensor
		meta    map[string]string
		want    string
	}{
		{"empty name", []Tensor{{DType: U8, Shape: []int{1}, Data: []byte{1}}}, nil, "empty name"},
		{"reserved name", []Tensor{{Name: metadataKey, DType: U8, Shape: []int{1}, Data: []byte{1}}}, nil, "reserved"},
		{"duplicate name", []Tensor{ok, ok}, nil, `tensor "ok": name occurs twice`},
		{"invalid UTF-8 name", []Tensor{{Name: "a\xff", DType: U8, Shape: []int{1}, Data: []byte{1}}}, nil, "not valid UTF-8"},
		{"unknown dtype", []Tensor{{Name: "x", DType: "F4", Shape: []int{2}, Data: []byte{1}}}, nil, `unknown dtype "F4"`},
		{"negative dim", []Tensor{{Name: "x", DType: U8, Shape: []int{-1}, Data: nil}}, nil, "negative dimension"},
		{"data too short", []Tensor{{Name: "x", DType: F32, Shape: []int{2, 2}, Data: make([]byte, 12)}}, nil, `tensor "x": dtype F32 with shape [2 2] does not match its 12 bytes`},
		{"data too long", []Tensor{{Name: "x", DType: BF16, Shape: []int{2}, Data: make([]byte, 6)}}, nil, "does not match its 6 bytes"},
		{"overflowing shape", []Tensor{{Name: "x", DType: F32, Shape: []int{1 << 31, 1 << 31, 1 << 31}, Data: nil}}, nil, "does not match"},
		{"invalid UTF-8 metadata", []Tensor{ok}, map[string]string{"k": "\xff"}, "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, tt.tensors, tt.meta)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written before the validation error", buf.Len())
			}
		})
	}
}

func TestWriteFileFailureKeepsOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	good := []Tensor{{Name: "a", DType: U8, Shape: []int{1}, Data: []byte{7}}}
	if err := WriteFile(path, good, nil); err != nil {
		t.Fatal(err)
	}
	bad := []Tensor{{Name: "a", DType: U8, Shape: []int{2}, Data: []byte{7}}}
	if err := WriteFile(path, bad, nil); err == nil {
		t.Fatal("WriteFile of an invalid tensor succeeded")
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	assertSameTensors(t, f, good)
}

func TestWriteStreamByteCount(t *testing.T) {
	for _, n := range []int{3, 5} {
		var buf bytes.Buffer
		err := WriteStream(&buf, []StreamTensor{{
			Name: "x", DType: U8, Shape: []int{4},
			WriteData: func(w io.Writer) error {
				_, err := w.Write(make([]byte, n))
				return err
			},
		}}, nil)
		if err == nil || !strings.Contains(err.Error(), `tensor "x"`) {
			t.Errorf("WriteData writing %d of 4 bytes: err = %v, want an error naming the tensor", n, err)
		}
	}
	var buf bytes.Buffer
	values := []float32{1, 2, 3, 4}
	err := WriteStream(&buf, []StreamTensor{{
		Name: "x", DType: BF16, Shape: []int{2, 2},
		WriteData: func(w io.Writer) error { return EncodeFloat32(w, BF16, values) },
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	x, _ := f.Tensor("x")
	got, err := x.Float32s()
	if err != nil || !slices.Equal(got, values) {
		t.Errorf("Float32s = %v, %v; want %v", got, err, values)
	}
}

// TestReadData: ReadData of any part of a tensor gives the same bytes as the
// mapping, for a File from Open (read from the file) and from Parse (copied).
func TestReadData(t *testing.T) {
	f, err := Open(adapterPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw, err := os.ReadFile(adapterPath)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []*File{f, p} {
		for _, name := range file.Names()[:5] {
			tensor, _ := file.Tensor(name)
			d := tensor.Data
			for _, r := range [][2]int{{0, len(d)}, {1, len(d) - 3}, {len(d) / 2, len(d)/2 + 1}} {
				dst := make([]byte, r[1]-r[0])
				if err := file.ReadData(dst, d[r[0]:r[1]]); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(dst, d[r[0]:r[1]]) {
					t.Fatalf("%s: ReadData of bytes [%d, %d) differs from the tensor's data", name, r[0], r[1])
				}
			}
		}
	}
}
