package model

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"

	"github.com/golora/golora/internal/fsutil"
)

// llama2.c's own defaults: version-0 files do not record them.
const (
	llama2cNormEps   = 1e-5
	llama2cRopeTheta = 10000
)

// llama2cHeaderBytes is the size of the version-0 header: seven int32.
const llama2cHeaderBytes = 7 * 4

// llama2cMagic starts the newer llama2.c exports (versions 1 and 2), "ak42"
// read as a little-endian uint32.
const llama2cMagic = 0x616b3432

// loadLlama2C reads a llama2.c version-0 checkpoint (a ".bin" written by
// llama2.c's legacy export). The file is streamed, never held whole in memory.
//
// The format has no magic: seven int32 (dim, hidden_dim, n_layers, n_heads,
// n_kv_heads, vocab_size, seq_len), then float32 tensors stacked over layers.
// A negative vocab_size means an unshared classifier follows the weights;
// otherwise the output head shares the embedding (Config.TiedOutput). The two
// legacy RoPE tables are skipped; NormEps and RopeTheta take llama2.c's fixed
// values 1e-5 and 10000. The file size must match the header exactly.
//
// llama2.c rotates interleaved pairs in RoPE, so the rows of wq and wk are
// permuted into Hugging Face's rotate-halves layout (see interleavedToHalves).
func loadLlama2C(path string) (*Weights, error) {
	f, err := fsutil.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	w, err := readLlama2C(bufio.NewReaderSize(f, 1<<20), st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return w, nil
}

// parseLlama2C is loadLlama2C for a checkpoint held in memory. The Weights do
// not refer to data.
func parseLlama2C(data []byte) (*Weights, error) {
	return readLlama2C(bytes.NewReader(data), int64(len(data)))
}

// llama2cHeader is the version-0 header, validated.
type llama2cHeader struct {
	dim, hidden, layers, heads, kvHeads, vocab, seqLen int
	shared                                             bool
}

func parseLlama2CHeader(raw []byte) (llama2cHeader, error) {
	switch string(raw[:4]) {
	case "PK\x03\x04":
		return llama2cHeader{}, errors.New("llama2c: header: this is a zip archive (a PyTorch pytorch_model.bin?), not a llama2.c export; convert it to safetensors and load the Hugging Face directory")
	case "GGUF":
		return llama2cHeader{}, errors.New("llama2c: header: this is a GGUF file, not a llama2.c export; load it with loadGGUF (or name it .gguf)")
	}
	var f [7]int32
	for i := range f {
		f[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	if uint32(f[0]) == llama2cMagic {
		return llama2cHeader{}, fmt.Errorf("llama2c: header: magic \"ak42\" marks a version-%d export; only the legacy version-0 format is supported", f[1])
	}
	h := llama2cHeader{
		dim: int(f[0]), hidden: int(f[1]), layers: int(f[2]), heads: int(f[3]), kvHeads: int(f[4]),
		vocab: int(f[5]), seqLen: int(f[6]), shared: f[5] > 0,
	}
	if h.vocab < 0 {
		h.vocab = -h.vocab
	}
	switch {
	case h.dim <= 0 || h.hidden <= 0 || h.layers <= 0 || h.heads <= 0 || h.kvHeads <= 0 || h.vocab <= 0 || h.seqLen <= 0:
		return h, fmt.Errorf("llama2c: header: dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads %d, vocab_size %d, seq_len %d: all must be non-zero and all but vocab_size positive (not a llama2.c version-0 checkpoint?)",
			f[0], f[1], f[2], f[3], f[4], f[5], f[6])
	case h.dim%h.heads != 0:
		return h, fmt.Errorf("llama2c: header: dim %d is not a multiple of n_heads %d", h.dim, h.heads)
	case (h.dim/h.heads)%2 != 0:
		return h, fmt.Errorf("llama2c: header: head size %d is odd; RoPE needs pairs", h.dim/h.heads)
	case h.heads%h.kvHeads != 0:
		return h, fmt.Errorf("llama2c: header: n_heads %d is not a multiple of n_kv_heads %d", h.heads, h.kvHeads)
	}
	return h, nil
}

// floatCount returns the number of float32 values the header implies, or an
// error if it overflows int64.
func (h llama2cHeader) floatCount() (int64, error) {
	headSize := int64(h.dim / h.heads)
	kvDim := int64(h.kvHeads) * headSize
	dim, hidden, layers, vocab := int64(h.dim), int64(h.hidden), int64(h.layers), int64(h.vocab)
	var c checkedSum
	c.add(vocab, dim)                     // token_embedding
	c.add(layers, dim)                    // rms_att
	c.add(layers, dim, dim)               // wq
	c.add(layers, kvDim, dim)             // wk
	c.add(layers, kvDim, dim)             // wv
	c.add(layers, dim, dim)               // wo
	c.add(layers, dim)                    // rms_ffn
	c.add(layers, hidden, dim)            // w1
	c.add(layers, dim, hidden)            // w2
	c.add(layers, hidden, dim)            // w3
	c.add(dim)                            // rms_final
	c.add(2, int64(h.seqLen), headSize/2) // legacy freq_cis_real, freq_cis_imag
	if !h.shared {
		c.add(vocab, dim) // wcls
	}
	if c.overflow {
		return 0, errors.New("llama2c: header: tensor sizes overflow")
	}
	return c.sum, nil
}

// checkedSum adds products of non-negative int64 factors, noting overflow.
type checkedSum struct {
	sum      int64
	overflow bool
}

func (c *checkedSum) add(factors ...int64) {
	p := uint64(1)
	for _, f := range factors {
		hi, lo := bits.Mul64(p, uint64(f))
		if hi != 0 || lo > math.MaxInt64 {
			c.overflow = true
			return
		}
		p = lo
	}
	if p > uint64(math.MaxInt64-c.sum) {
		c.overflow = true
		return
	}
	c.sum += int64(p)
}

// llama2cLinearNames are llama2.c's names of a block's linears, in the order
// of Layer.Linears.
var llama2cLinearNames = [len(modules)]string{"wq", "wk", "wv", "wo", "w1", "w3", "w2"}

// readLlama2C reads a legacy (version-0) llama2.c checkpoint of size bytes
// from r.
func readLlama2C(r io.Reader, size int64) (*Weights, error) {
	h, err := readLlama2CHeader(r, size)
	if err != nil {
		return nil, err
	}
	cfg := Config{
		Dim: h.dim, HiddenDim: h.hidden, Layers: h.layers, Heads: h.heads, KVHeads: h.kvHeads,
		HeadDim: h.dim / h.heads, VocabSize: h.vocab, MaxSeqLen: h.seqLen,
		NormEps: llama2cNormEps, RopeTheta: llama2cRopeTheta, TiedOutput: h.shared,
	}
	w := NewWeights(cfg)
	tr := &tensorReader{r: r}
	// The file holds each tensor for all layers in turn: attention norms,
	// wq, wk, wv, wo, MLP norms, w1 (gate), w2 (down), w3 (up).
	stacked := func(i int) {
		for l := range w.Layers {
			lin := *w.Layers[l].Linears()[i].Linear
			lin.Dense = tr.read(fmt.Sprintf("%s[%d]", llama2cLinearNames[i], l), lin.Out*lin.In)
		}
	}

	w.Embedding = tr.read("token_embedding_table", cfg.VocabSize*cfg.Dim)
	for l := range w.Layers {
		w.Layers[l].AttnNorm = tr.read(fmt.Sprintf("rms_att_weight[%d]", l), cfg.Dim)
	}
	for _, i := range []int{0, 1, 2, 3} {
		stacked(i)
	}
	for l := range w.Layers {
		w.Layers[l].MLPNorm = tr.read(fmt.Sprintf("rms_ffn_weight[%d]", l), cfg.Dim)
	}
	for _, i := range []int{4, 6, 5} {
		stacked(i)
	}
	w.Norm = tr.read("rms_final_weight", cfg.Dim)
	tr.skip("freq_cis_real, freq_cis_imag", 2*int64(h.seqLen)*int64(cfg.HeadDim/2))
	if h.shared {
		w.Output.Dense = w.Embedding
	} else {
		w.Output.Dense = tr.read("wcls", cfg.VocabSize*cfg.Dim)
	}
	if tr.err != nil {
		return nil, tr.err
	}
	for l := range w.Layers {
		layer := &w.Layers[l]
		if err := interleavedToHalves(layer.Q.Dense, cfg.Heads, cfg.HeadDim, cfg.Dim); err != nil {
			return nil, fmt.Errorf("llama2c: wq[%d]: %w", l, err)
		}
		if err := interleavedToHalves(layer.K.Dense, cfg.KVHeads, cfg.HeadDim, cfg.Dim); err != nil {
			return nil, fmt.Errorf("llama2c: wk[%d]: %w", l, err)
		}
	}
	return w, nil
}

// readLlama2CHeader reads and checks the header, and that the file's size is
// the one it implies.
func readLlama2CHeader(r io.Reader, size int64) (llama2cHeader, error) {
	raw := make([]byte, llama2cHeaderBytes)
	if _, err := io.ReadFull(r, raw); err != nil {
		return llama2cHeader{}, fmt.Errorf("llama2c: header: file is %d bytes, shorter than the %d-byte header", size, llama2cHeaderBytes)
	}
	h, err := parseLlama2CHeader(raw)
	if err != nil {
		return h, err
	}
	floats, err := h.floatCount()
	if err != nil {
		return llama2cHeader{}, err
	}
	if floats > (math.MaxInt64-llama2cHeaderBytes)/4 {
		return h, errors.New("llama2c: header: tensor sizes overflow")
	}
	if want := llama2cHeaderBytes + 4*floats; size != want {
		return h, fmt.Errorf("llama2c: file is %d bytes, but its header (dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads %d, vocab_size %d, seq_len %d, shared classifier %t) implies %d bytes",
			size, h.dim, h.hidden, h.layers, h.heads, h.kvHeads, h.vocab, h.seqLen, h.shared, want)
	}
	return h, nil
}

// tensorReader reads consecutive little-endian float32 tensors, each into its
// own allocation (so that dropping one, e.g. after quantization, frees it),
// keeping the first error.
type tensorReader struct {
	r   io.Reader
	buf []byte
	err error
}

func (t *tensorReader) read(name string, n int) []float32 {
	if t.err != nil {
		return nil
	}
	out := make([]float32, n)
	const chunk = 1 << 16
	if t.buf == nil {
		t.buf = make([]byte, 4*chunk)
	}
	for done := 0; done < n; {
		m := min(chunk, n-done)
		if _, err := io.ReadFull(t.r, t.buf[:4*m]); err != nil {
			t.err = fmt.Errorf("llama2c: tensor %s: %w", name, noEOF(err))
			return nil
		}
		for i := range m {
			out[done+i] = math.Float32frombits(binary.LittleEndian.Uint32(t.buf[4*i:]))
		}
		done += m
	}
	return out
}

func (t *tensorReader) skip(name string, floats int64) {
	if t.err != nil {
		return
	}
	if _, err := io.CopyN(io.Discard, t.r, 4*floats); err != nil {
		t.err = fmt.Errorf("llama2c: %s: %w", name, noEOF(err))
	}
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
