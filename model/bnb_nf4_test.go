package model

import (
	"bytes"
	"encoding/binary"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
	"github.com/stretchr/testify/require"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the bitsandbytes seed files in testdata/bnb/")

const seedPrefix = "model.layers.0.mlp.down_proj"

// seedFiles are the bitsandbytes-layout files in testdata/bnb/, written by
// bnbTensors from deterministic weights; there is no file written by
// bitsandbytes itself in the project's fixtures. Only the small ones seed
// the fuzzer: the fuzzer minimizes every new input byte by byte, which takes
// seconds on a 10 KB file.
var seedFiles = []struct {
	name       string
	rows, cols int
	opts       nf4.Options
	fuzz       bool
}{
	{"bnb_nf4_dq.safetensors", 3, 13, nf4.Options{}, true},                                           // odd element count
	{"bnb_nf4_plain.safetensors", 4, 16, nf4.Options{BlockSize: 32, DisableDoubleQuant: true}, true}, // float32 absmax
	{"bnb_nf4_dq_nested2.safetensors", 130, 128, nf4.Options{}, false},                               // 260 blocks: two nested blocks
}

// writeBnB serializes m under prefix to safetensors bytes.
func writeBnB(t testing.TB, m *nf4.Matrix, prefix string) []byte {
	tensors, err := bnbTensors(prefix, m)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, safetensors.Write(&buf, tensors, map[string]string{"format": "pt"}))
	return buf.Bytes()
}

// readBnB parses safetensors bytes and loads the weight under prefix.
func readBnB(data []byte, prefix string) (*nf4.Matrix, error) {
	f, err := safetensors.Parse(data)
	if err != nil {
		return nil, err
	}
	return fromBnBTensors(prefix, f.Tensor)
}

func TestBnBSeedFiles(t *testing.T) {
	for _, s := range seedFiles {
		m, err := nf4.Quantize(bnbGaussian(uint64(s.rows*s.cols), s.rows*s.cols, 0.02), s.rows, s.cols, s.opts)
		require.NoError(t, err)
		path := filepath.Join("testdata", "bnb", s.name)
		if *updateSeeds {
			require.NoError(t, os.WriteFile(path, writeBnB(t, m, seedPrefix), 0o644))
		}
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		got, err := readBnB(data, seedPrefix)
		require.NoError(t, err, s.name)
		require.Equal(t, m.Parts(), got.Parts(), s.name)
	}
}

func TestBnBRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		rows, cols int
		opts       nf4.Options
	}{
		{9, 45, nf4.Options{}}, {1, 1, nf4.Options{}}, {3, 7, nf4.Options{DisableDoubleQuant: true}},
		{64, 256, nf4.Options{BlockSize: 4096}}, {300, 256, nf4.Options{BlockSize: 32}},
	} {
		w := bnbGaussian(41, tc.rows*tc.cols, 0.02)
		m, err := nf4.Quantize(w, tc.rows, tc.cols, tc.opts)
		require.NoError(t, err)
		got, err := readBnB(writeBnB(t, m, "lm.q_proj"), "lm.q_proj")
		require.NoError(t, err)
		require.Equal(t, m.Parts(), got.Parts())
		a := make([]float32, tc.rows*tc.cols)
		b := make([]float32, tc.rows*tc.cols)
		require.NoError(t, m.Dequantize(a))
		require.NoError(t, got.Dequantize(b))
		require.Equal(t, a, b)
	}
}

func TestBnBLayout(t *testing.T) {
	w := bnbGaussian(43, 3*100, 0.02)
	m, err := nf4.Quantize(w, 3, 100, nf4.Options{})
	require.NoError(t, err)
	tensors, err := bnbTensors("P", m)
	require.NoError(t, err)
	byName := map[string]safetensors.Tensor{}
	var names []string
	for _, tt := range tensors {
		byName[tt.Name] = tt
		names = append(names, tt.Name)
	}
	require.Equal(t, []string{"P.weight", "P.weight.absmax", "P.weight.quant_map", "P.weight.nested_absmax",
		"P.weight.nested_quant_map", "P.weight.quant_state.bitsandbytes__nf4"}, names)
	check := func(name string, dtype safetensors.DType, shape ...int) {
		require.Equal(t, dtype, byName[name].DType, name)
		require.Equal(t, shape, byName[name].Shape, name)
	}
	check("P.weight", safetensors.U8, 150, 1)
	check("P.weight.absmax", safetensors.U8, 5)
	check("P.weight.quant_map", safetensors.F32, 16)
	check("P.weight.nested_absmax", safetensors.F32, 1)
	check("P.weight.nested_quant_map", safetensors.F32, 256)
	offset := strings.TrimSuffix(strings.TrimPrefix(string(byName["P.weight.quant_state.bitsandbytes__nf4"].Data),
		`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [3, 100], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": `), "}")
	require.NotContains(t, offset, "{", "quant_state JSON layout")
	require.Equal(t, m.Parts().Offset, parseFloat32(t, offset))

	plain, err := nf4.Quantize(w, 3, 100, nf4.Options{DisableDoubleQuant: true})
	require.NoError(t, err)
	tensors, err = bnbTensors("P", plain)
	require.NoError(t, err)
	require.Len(t, tensors, 4)
	require.Equal(t, safetensors.F32, tensors[1].DType)
	require.Equal(t, []int{5}, tensors[1].Shape)
	require.Equal(t, `{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [3, 100]}`, string(tensors[3].Data))

	_, err = bnbTensors("", plain)
	require.ErrorContains(t, err, "empty")
}

func parseFloat32(t *testing.T, s string) float32 {
	f, err := strconv.ParseFloat(s, 64)
	require.NoError(t, err)
	return float32(f)
}

// mutateBnB writes a valid double-quantized weight, lets edit change its
// tensors, and loads the result.
func mutateBnB(t *testing.T, dq bool, edit func(map[string]*safetensors.Tensor)) error {
	t.Helper()
	m, err := nf4.Quantize(bnbGaussian(47, 20*64, 0.02), 20, 64, nf4.Options{DisableDoubleQuant: !dq})
	require.NoError(t, err)
	tensors, err := bnbTensors("P", m)
	require.NoError(t, err)
	byName := map[string]*safetensors.Tensor{}
	for i := range tensors {
		byName[tensors[i].Name] = &tensors[i]
	}
	edit(byName)
	_, err = fromBnBTensors("P", func(name string) (safetensors.Tensor, bool) {
		tt, ok := byName[name]
		if !ok || tt == nil {
			return safetensors.Tensor{}, false
		}
		return *tt, true
	})
	return err
}

func setState(json string) func(map[string]*safetensors.Tensor) {
	return func(ts map[string]*safetensors.Tensor) {
		st := ts["P.weight.quant_state.bitsandbytes__nf4"]
		st.Data = []byte(json)
		st.Shape = []int{len(json)}
	}
}

func TestFromBnBTensorsErrors(t *testing.T) {
	const plainState = `{"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [20, 64]`
	for _, tc := range []struct {
		name string
		dq   bool
		edit func(map[string]*safetensors.Tensor)
		want string
	}{
		{"no quant_state", true, func(ts map[string]*safetensors.Tensor) {
			delete(ts, "P.weight.quant_state.bitsandbytes__nf4")
		}, "no tensor P.weight.quant_state.bitsandbytes__nf4"},
		{"fp4 key", true, func(ts map[string]*safetensors.Tensor) {
			st := ts["P.weight.quant_state.bitsandbytes__nf4"]
			delete(ts, st.Name)
			ts["P.weight.quant_state.bitsandbytes__fp4"] = st
		}, "quantized to FP4, not NF4"},
		{"fp4 quant_type", false, setState(`{"quant_type": "fp4", "blocksize": 64, "dtype": "float16", "shape": [20, 64]}`),
			"quant_type is fp4"},
		{"unknown quant_type", false, setState(`{"quant_type": "int4", "blocksize": 64, "dtype": "float16", "shape": [20, 64]}`),
			`quant_type "int4"`},
		{"bad JSON", false, setState(`{"quant_type": "nf4", `), "quant_state JSON"},
		{"trailing JSON", false, setState(plainState + `} {}`), "quant_state JSON"},
		{"float blocksize", false, setState(`{"quant_type": "nf4", "blocksize": 64.5, "dtype": "float16", "shape": [20, 64]}`),
			"quant_state JSON"},
		{"no blocksize", false, setState(`{"quant_type": "nf4", "dtype": "float16", "shape": [20, 64]}`), "no blocksize"},
		{"blocksize 48", false, setState(`{"quant_type": "nf4", "blocksize": 48, "dtype": "float16", "shape": [20, 64]}`),
			"invalid block size 48"},
		{"3-D shape", false, setState(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [2, 10, 64]}`),
			"want [out, in]"},
		{"negative shape", false, setState(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [-20, -64]}`),
			"must be positive"},
		{"dtype", false, setState(`{"quant_type": "nf4", "blocksize": 64, "dtype": "int8", "shape": [20, 64]}`), `dtype "int8"`},
		{"shape vs bytes", false, setState(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [21, 64]}`),
			"P.weight: shape [640 1] holds 640 elements, want 672"},
		{"weight dtype", false, func(ts map[string]*safetensors.Tensor) {
			w := ts["P.weight"]
			w.DType = safetensors.BF16
			w.Shape = []int{320, 1}
		}, "P.weight: dtype BF16, want U8"},
		{"weight data vs shape", false, func(ts map[string]*safetensors.Tensor) {
			ts["P.weight"].Shape = []int{640, 2}
		}, "does not match"},
		{"quant_map not NF4", false, func(ts map[string]*safetensors.Tensor) {
			fp4 := quant.FP4Codebook()
			ts["P.weight.quant_map"].Data = safetensors.Float32Bytes(fp4[:])
		}, "the NF4 codebook has"},
		{"quant_map missing", false, func(ts map[string]*safetensors.Tensor) {
			delete(ts, "P.weight.quant_map")
		}, "no tensor P.weight.quant_map"},
		{"absmax dtype", false, func(ts map[string]*safetensors.Tensor) {
			a := ts["P.weight.absmax"]
			a.DType = safetensors.F16
			a.Shape = []int{40}
		}, "P.weight.absmax: dtype F16, want F32"},
		{"absmax count", false, func(ts map[string]*safetensors.Tensor) {
			a := ts["P.weight.absmax"]
			a.Data = a.Data[:4*19]
			a.Shape = []int{19}
		}, "holds 19 elements, want 20"},
		{"NaN absmax", false, func(ts map[string]*safetensors.Tensor) {
			binary.LittleEndian.PutUint32(ts["P.weight.absmax"].Data[4*3:], math.Float32bits(float32(math.NaN())))
		}, "absmax of block 3 is NaN"},
		{"negative absmax", false, func(ts map[string]*safetensors.Tensor) {
			binary.LittleEndian.PutUint32(ts["P.weight.absmax"].Data[4*2:], math.Float32bits(-1))
		}, "absmax of block 2 is -1"},
		{"nested keys without nested tensors", false, setState(plainState +
			`, "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.01}`),
			"double quantization is on, but P.weight.nested_absmax is absent"},
		{"nested tensors without nested keys", true, setState(plainState + `}`),
			"double quantization is off, but P.weight.nested_absmax is present"},
		{"partial nested keys", true, setState(plainState + `, "nested_offset": 0.01}`),
			"needs nested_blocksize, nested_dtype and nested_offset"},
		{"nested dtype", true, setState(plainState + `, "nested_blocksize": 256, "nested_dtype": "float16", "nested_offset": 0.01}`),
			`nested_dtype "float16"`},
		{"nested blocksize", true, setState(plainState + `, "nested_blocksize": 100, "nested_dtype": "float32", "nested_offset": 0.01}`),
			"nested_blocksize"},
		{"nested offset overflows float32", true, setState(plainState +
			`, "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 1e300}`), "not a finite float32"},
		{"nested absmax count", true, func(ts map[string]*safetensors.Tensor) {
			a := ts["P.weight.nested_absmax"]
			a.Data = append(a.Data, a.Data...)
			a.Shape = []int{2}
		}, "P.weight.nested_absmax: shape [2] holds 2 elements, want 1"},
		{"quantized absmax dtype", true, func(ts map[string]*safetensors.Tensor) {
			a := ts["P.weight.absmax"]
			a.DType = safetensors.F32
			a.Data = make([]byte, 4*20)
		}, "one uint8 per block"},
		{"nested quant map length", true, func(ts map[string]*safetensors.Tensor) {
			q := ts["P.weight.nested_quant_map"]
			q.Data = q.Data[:4*255]
			q.Shape = []int{255}
		}, "P.weight.nested_quant_map: shape [255] holds 255 elements, want 256"},
		{"nested quant map NaN", true, func(ts map[string]*safetensors.Tensor) {
			binary.LittleEndian.PutUint32(ts["P.weight.nested_quant_map"].Data[4*9:], math.Float32bits(float32(math.Inf(1))))
		}, "nested code value 9 is +Inf"},
		{"absmax decodes to Inf", true, func(ts map[string]*safetensors.Tensor) {
			binary.LittleEndian.PutUint32(ts["P.weight.nested_absmax"].Data, math.Float32bits(math.MaxFloat32))
			binary.LittleEndian.PutUint32(ts["P.weight.nested_quant_map"].Data[4*255:], math.Float32bits(math.MaxFloat32))
		}, "decodes to +Inf"},
		{"quant_state dtype", true, func(ts map[string]*safetensors.Tensor) {
			ts["P.weight.quant_state.bitsandbytes__nf4"].DType = safetensors.I8
		}, "dtype I8, want U8"},
	} {
		err := mutateBnB(t, tc.dq, tc.edit)
		require.Error(t, err, tc.name)
		require.ErrorContains(t, err, tc.want, tc.name)
		require.True(t, strings.HasPrefix(err.Error(), `model: bitsandbytes NF4 weight "P": `), "%s: %v", tc.name, err)
	}
	// The unchanged tensors load, also with a dtype bitsandbytes records for
	// a half-precision model.
	require.NoError(t, mutateBnB(t, true, func(map[string]*safetensors.Tensor) {}))
	require.NoError(t, mutateBnB(t, false, setState(plainState+`, "unknown_future_key": [1]}`)))
}

func FuzzFromBnBTensors(f *testing.F) {
	for _, s := range seedFiles {
		if !s.fuzz {
			continue
		}
		data, err := os.ReadFile(filepath.Join("testdata", "bnb", s.name))
		require.NoError(f, err)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := readBnB(data, seedPrefix)
		if err != nil {
			return
		}
		rows, cols := m.Dims()
		if rows*cols > 1<<20 {
			return
		}
		// Anything that loads must decode, multiply and survive a round trip.
		dst := make([]float32, rows*cols)
		require.NoError(t, m.DequantizeRows(dst, 0, rows))
		x := make([]float32, 2*cols)
		for i := range x {
			x[i] = float32(i%7) - 3
		}
		require.NoError(t, m.MulT(make([]float32, 2*rows), x, 2))
		again, err := readBnB(writeBnB(t, m, seedPrefix), seedPrefix)
		require.NoError(t, err)
		require.Equal(t, m.Parts(), again.Parts())
	})
}

// bnbGaussian returns n weights drawn from N(0, std²) with a fixed seed.
func bnbGaussian(seed uint64, n int, std float64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	w := make([]float32, n)
	for i := range w {
		w[i] = float32(r.NormFloat64() * std)
	}
	return w
}
