package model

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The llama2.c checkpoint shipped with the package (stories260k/README.md),
// also used by the tests.
const stories260KBinPath = "stories260k/stories260K.bin"

func TestLoadLlama2CHeader(t *testing.T) {
	w, err := loadLlama2C(stories260KBinPath)
	require.NoError(t, err)
	// Header values from the fixtures README (llama2.c's model card for
	// stories260K); eps and theta are llama2.c's fixed values.
	assert.Equal(t, Config{
		Dim: 64, HiddenDim: 172, Layers: 5, Heads: 8, KVHeads: 4, HeadDim: 8,
		VocabSize: 512, MaxSeqLen: 512, NormEps: 1e-5, RopeTheta: 10000, TiedOutput: true,
	}, w.Config)
	require.NoError(t, w.Validate())
	assert.Equal(t, "model.layers.4.mlp.down_proj", w.Layers[4].Down.Name)
	assert.Equal(t, "lm_head", w.Output.Name)
	assert.Same(t, &w.Embedding[0], &w.Output.Dense[0], "a shared classifier aliases the embedding")
}

// readFloats decodes n little-endian float32 starting at float index at of
// the data after the 28-byte header.
func readFloats(data []byte, at, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[28+4*(at+i):]))
	}
	return out
}

// The loaded tensors are the file's floats, at the offsets the llama2.c
// layout gives, with wq and wk rows permuted per head as 0, 2, 4, ..., 1, 3, ...
func TestLoadLlama2CTensorsMatchFileLayout(t *testing.T) {
	data, err := os.ReadFile(stories260KBinPath)
	require.NoError(t, err)
	w, err := parseLlama2C(data)
	require.NoError(t, err)

	const dim, hidden, layers, vocab, kvDim, headDim = 64, 172, 5, 512, 32, 8
	off := 0
	next := func(n int) []float32 { f := readFloats(data, off, n); off += n; return f }
	assert.Equal(t, next(vocab*dim), w.Embedding)
	for l := range layers {
		assert.Equal(t, next(dim), w.Layers[l].AttnNorm)
	}
	unpermute := func(rows []float32, heads int) []float32 {
		out := make([]float32, len(rows))
		for h := range heads {
			for i := range headDim {
				// HF row i of a head is interleaved row 2i (first half) or
				// 2(i-headDim/2)+1 (second half).
				src := 2 * i
				if i >= headDim/2 {
					src = 2*(i-headDim/2) + 1
				}
				copy(out[(h*headDim+i)*dim:(h*headDim+i+1)*dim], rows[(h*headDim+src)*dim:(h*headDim+src+1)*dim])
			}
		}
		return out
	}
	for l := range layers {
		assert.Equal(t, unpermute(next(dim*dim), 8), w.Layers[l].Q.Dense, "wq[%d]", l)
	}
	for l := range layers {
		assert.Equal(t, unpermute(next(kvDim*dim), 4), w.Layers[l].K.Dense, "wk[%d]", l)
	}
	for l := range layers {
		assert.Equal(t, next(kvDim*dim), w.Layers[l].V.Dense, "wv[%d]", l)
	}
	for l := range layers {
		assert.Equal(t, next(dim*dim), w.Layers[l].O.Dense, "wo[%d]", l)
	}
	for l := range layers {
		assert.Equal(t, next(dim), w.Layers[l].MLPNorm)
	}
	for l := range layers {
		assert.Equal(t, next(hidden*dim), w.Layers[l].Gate.Dense, "w1[%d]", l)
	}
	for l := range layers {
		assert.Equal(t, next(dim*hidden), w.Layers[l].Down.Dense, "w2[%d]", l)
	}
	for l := range layers {
		assert.Equal(t, next(hidden*dim), w.Layers[l].Up.Dense, "w3[%d]", l)
	}
	assert.Equal(t, next(dim), w.Norm)
	off += 2 * 512 * headDim / 2
	assert.Equal(t, len(data), 28+4*off, "every float accounted for")
}

func TestInterleavedToHalvesHandMade(t *testing.T) {
	// Two heads of dim 4, two columns; row r holds (10r, 10r+1).
	w := make([]float32, 2*4*2)
	for r := range 8 {
		w[2*r], w[2*r+1] = float32(10*r), float32(10*r+1)
	}
	require.NoError(t, interleavedToHalves(w, 2, 4, 2))
	// Per head, rows 0, 2, 1, 3: pair (0, 1) goes to (0, 2), pair (2, 3) to (1, 3).
	assert.Equal(t, []float32{0, 1, 20, 21, 10, 11, 30, 31, 40, 41, 60, 61, 50, 51, 70, 71}, w)
	require.NoError(t, halvesToInterleaved(w, 2, 4, 2))
	for r := range 8 {
		assert.Equal(t, []float32{float32(10 * r), float32(10*r + 1)}, w[2*r:2*r+2])
	}

	assert.ErrorContains(t, interleavedToHalves(w, 2, 3, 2), "even head dim")
	assert.ErrorContains(t, interleavedToHalves(w[:15], 2, 4, 2), "15 values")
}

// ropeInterleaved rotates pairs (2i, 2i+1) of one head by pos·θ^(−2i/d), as
// llama2.c and Meta's code do.
func ropeInterleaved(x []float64, pos int, theta float64) {
	d := len(x)
	for i := range d / 2 {
		a := float64(pos) * math.Pow(theta, -2*float64(i)/float64(d))
		s, c := math.Sincos(a)
		x0, x1 := x[2*i], x[2*i+1]
		x[2*i], x[2*i+1] = x0*c-x1*s, x0*s+x1*c
	}
}

// ropeHalves rotates pairs (i, i+d/2) by the same angles, as Hugging Face's
// rotate_half does.
func ropeHalves(x []float64, pos int, theta float64) {
	d := len(x)
	for i := range d / 2 {
		a := float64(pos) * math.Pow(theta, -2*float64(i)/float64(d))
		s, c := math.Sincos(a)
		x0, x1 := x[i], x[i+d/2]
		x[i], x[i+d/2] = x0*c-x1*s, x0*s+x1*c
	}
}

// The permutation is the right one (and in the right direction) exactly when
// Hugging Face's RoPE on the permuted weights gives the same rotated vector as
// interleaved RoPE on the original weights, up to the same row permutation,
// so that attention scores q·k agree.
func TestInterleavedToHalvesMatchesRoPE(t *testing.T) {
	const heads, headDim, cols, pos, theta = 3, 8, 5, 7, 10000.0
	rng := rand.New(rand.NewPCG(1, 2))
	w := make([]float32, heads*headDim*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	x := make([]float32, cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	project := func(w []float32) []float64 {
		y := make([]float64, heads*headDim)
		for r := range y {
			for c := range cols {
				y[r] += float64(w[r*cols+c]) * float64(x[c])
			}
		}
		return y
	}
	meta := project(w)
	hfW := append([]float32(nil), w...)
	require.NoError(t, interleavedToHalves(hfW, heads, headDim, cols))
	hf := project(hfW)
	for h := range heads {
		m, f := meta[h*headDim:(h+1)*headDim], hf[h*headDim:(h+1)*headDim]
		ropeInterleaved(m, pos, theta)
		ropeHalves(f, pos, theta)
		for i := range headDim / 2 {
			assert.InDelta(t, m[2*i], f[i], 1e-9, "head %d pair %d first", h, i)
			assert.InDelta(t, m[2*i+1], f[i+headDim/2], 1e-9, "head %d pair %d second", h, i)
		}
	}
}

// llama2cFile builds a version-0 checkpoint with random weights: header
// fields h (vocab negative for an unshared classifier), and the float count
// that the layout in formats.md gives.
func llama2cFile(h [7]int32, seed uint64) []byte {
	dim, hidden, layers, heads, kvHeads, seqLen := int(h[0]), int(h[1]), int(h[2]), int(h[3]), int(h[4]), int(h[6])
	vocab := int(h[5])
	shared := vocab > 0
	if !shared {
		vocab = -vocab
	}
	headSize := dim / heads
	kvDim := kvHeads * headSize
	n := vocab*dim + layers*(2*dim+2*dim*dim+2*kvDim*dim+3*hidden*dim) + dim + seqLen*headSize
	if !shared {
		n += vocab * dim
	}
	var buf bytes.Buffer
	_ = binary.Write(&buf, binary.LittleEndian, h)
	rng := rand.New(rand.NewPCG(seed, 0))
	for range n {
		_ = binary.Write(&buf, binary.LittleEndian, float32(rng.NormFloat64()))
	}
	return buf.Bytes()
}

func TestParseLlama2CUnsharedClassifier(t *testing.T) {
	data := llama2cFile([7]int32{8, 12, 2, 2, 1, -10, 6}, 3)
	w, err := parseLlama2C(data)
	require.NoError(t, err)
	require.NoError(t, w.Validate())
	assert.False(t, w.Config.TiedOutput)
	assert.Equal(t, 10, w.Config.VocabSize)
	assert.Equal(t, 4, w.Config.HeadDim)
	assert.Equal(t, 1, w.Config.KVHeads)
	// wcls is the last vocab×dim floats of the file.
	assert.Equal(t, readFloats(data, (len(data)-28)/4-80, 80), w.Output.Dense)
	assert.NotSame(t, &w.Embedding[0], &w.Output.Dense[0])

	shared := llama2cFile([7]int32{8, 12, 2, 2, 1, 10, 6}, 3)
	w, err = parseLlama2C(shared)
	require.NoError(t, err)
	assert.True(t, w.Config.TiedOutput)
}

func TestLoadLlama2CErrors(t *testing.T) {
	real, err := os.ReadFile(stories260KBinPath)
	require.NoError(t, err)
	header := func(f ...int32) []byte {
		var buf bytes.Buffer
		_ = binary.Write(&buf, binary.LittleEndian, f)
		return buf.Bytes()
	}
	withHeader := func(f ...int32) []byte { return append(header(f...), real[28:]...) }
	rng := rand.New(rand.NewPCG(9, 9))
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty.bin", nil, "shorter than the 28-byte header"},
		{"short.bin", real[:20], "file is 20 bytes, shorter than the 28-byte header"},
		{"truncated.bin", real[:len(real)-4], "file is 1056536 bytes, but its header (dim 64, hidden_dim 172, n_layers 5, n_heads 8, n_kv_heads 4, vocab_size 512, seq_len 512, shared classifier true) implies 1056540 bytes"},
		{"extra.bin", append(append([]byte(nil), real...), 0, 0, 0, 0), "file is 1056544 bytes"},
		{"unshared.bin", withHeader(64, 172, 5, 8, 4, -512, 512), "shared classifier false) implies 1187612 bytes"},
		{"zeros.bin", make([]byte, 100), "all must be non-zero"},
		{"garbage.bin", garbage, "llama2c: "},
		{"heads.bin", withHeader(64, 172, 5, 7, 1, 512, 512), "dim 64 is not a multiple of n_heads 7"},
		{"kvheads.bin", withHeader(64, 172, 5, 8, 3, 512, 512), "n_heads 8 is not a multiple of n_kv_heads 3"},
		{"oddhead.bin", withHeader(24, 172, 5, 8, 4, 512, 512), "head size 3 is odd"},
		{"huge.bin", withHeader(1<<30, 1<<30, 1<<30, 1, 1, 1<<30, 1<<30), "overflow"},
		{"pytorch.bin", append([]byte("PK\x03\x04"), real[4:100]...), "zip archive"},
		{"gguf.bin", append([]byte("GGUF"), real[4:100]...), "this is a GGUF file"},
		{"v2.bin", withHeader(0x616b3432, 2, 0, 0, 0, 0, 0), "version-2 export"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name)
			require.NoError(t, os.WriteFile(path, c.data, 0o644))
			w, err := loadLlama2C(path)
			assert.True(t, w == nil, "no weights with an error")
			require.Error(t, err)
			assert.Contains(t, err.Error(), path)
			assert.Contains(t, err.Error(), c.want)

			_, err = parseLlama2C(c.data)
			assert.ErrorContains(t, err, c.want)
		})
	}
	_, err = loadLlama2C(filepath.Join(dir, "missing.bin"))
	assert.ErrorContains(t, err, "missing.bin")
}

// FuzzParseLlama2C checks that parseLlama2C never panics and that whatever
// it accepts passes Validate.
func FuzzParseLlama2C(f *testing.F) {
	real, err := os.ReadFile(stories260KBinPath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add(llama2cFile([7]int32{4, 6, 1, 2, 1, 5, 3}, 1))
	f.Add(llama2cFile([7]int32{4, 6, 2, 2, 2, -5, 2}, 2))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := parseLlama2C(data)
		if err != nil {
			return
		}
		if err := w.Validate(); err != nil {
			t.Fatalf("accepted weights fail Validate: %v", err)
		}
	})
}
