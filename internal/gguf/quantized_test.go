package gguf

import (
	"bytes"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ggmlBlocks are blocks that ggml itself quantized (see
// quant/ggml/testdata/README.md): 6 rows of 512 elements.
func ggmlBlocks(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile("../../quant/ggml/testdata/" + name + ".blocks")
	require.NoError(t, err)
	return raw
}

var quantizedTypes = map[string]GGMLType{
	"q8_0": TypeQ8_0, "q4_0": TypeQ4_0, "q4_1": TypeQ4_1, "q5_0": TypeQ5_0, "q5_1": TypeQ5_1,
	"q2_K": TypeQ2_K, "q3_K": TypeQ3_K, "q4_K": TypeQ4_K, "q5_K": TypeQ5_K, "q6_K": TypeQ6_K,
}

// quantizedFile is a GGUF file holding one [6, 512] tensor "w.T" of ggml's
// blocks per quantized type T, and a small F32 vector.
func quantizedFile(t testing.TB) []byte {
	t.Helper()
	var b Builder
	require.NoError(t, b.AddKV("general.architecture", "llama"))
	for _, name := range []string{"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K"} {
		require.NoError(t, b.AddMatrix("w."+name, quantizedTypes[name], 6, 512, ggmlBlocks(t, name)))
		// An F32 vector of odd size leaves the next tensor to be aligned.
		require.NoError(t, b.AddFloat32("norm."+name, []int{7}, make([]float32, 7)))
	}
	var buf bytes.Buffer
	_, err := b.WriteTo(&buf)
	require.NoError(t, err)
	return buf.Bytes()
}

// TestQuantizedRoundTrip writes block-quantized tensors and reads their raw
// bytes back unchanged, with the shape and byte size ggml's layout gives.
func TestQuantizedRoundTrip(t *testing.T) {
	types := quantizedTypes
	f, err := Parse(quantizedFile(t))
	require.NoError(t, err)
	for name, typ := range types {
		ti, ok := f.Tensor("w." + name)
		require.True(t, ok, name)
		assert.Equal(t, typ, ti.Type)
		assert.Equal(t, []uint64{512, 6}, ti.Dims)
		rows, cols, err := ti.RowsCols()
		require.NoError(t, err)
		assert.Equal(t, [2]int{6, 512}, [2]int{rows, cols})
		raw, err := f.TensorBytes("w." + name)
		require.NoError(t, err)
		assert.Equal(t, ggmlBlocks(t, name), raw, name)
		assert.Zero(t, (f.DataOffset+ti.Offset)%f.Alignment, "%s is aligned", name)
		_, err = f.TensorFloat32("w." + name)
		assert.ErrorContains(t, err, "only F32, F16 and BF16 can be read as float32")
	}
}

func TestQuantizedWriteErrors(t *testing.T) {
	var b Builder
	q8 := ggmlBlocks(t, "q8_0")
	// 48 columns: 96 elements are three blocks, but a row would split one.
	assert.ErrorContains(t, b.AddMatrix("w", TypeQ8_0, 2, 48, q8[:3*34]),
		`tensor "w": innermost dimension 48 is not a multiple of the Q8_0 block size 32`)
	assert.ErrorContains(t, b.AddMatrix("w", TypeQ4_K, 1, 256, q8[:143]), "143 bytes of data, want 256 Q4_K elements")
	assert.ErrorContains(t, b.AddMatrix("w", TypeQ4_K, -1, 256, nil), "negative shape")
}

func TestRowsCols(t *testing.T) {
	for _, tc := range []struct {
		dims       []uint64
		rows, cols int
		err        string
	}{
		{[]uint64{64}, 1, 64, ""},
		{[]uint64{256, 3, 2}, 6, 256, ""},
		{nil, 0, 0, "no dimensions"},
		{[]uint64{32, 0}, 0, 0, "zero dimension"},
	} {
		rows, cols, err := TensorInfo{Name: "t", Dims: tc.dims}.RowsCols()
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, [2]int{tc.rows, tc.cols}, [2]int{rows, cols})
	}
}

// ggmlReadFile is a GGUF file of quantized tensors written by golora that
// ggml's own reader loaded (quant/ggml/testdata/README.md).
const ggmlReadFile = "../../quant/ggml/testdata/written.gguf"
