package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
)

// tinyConfig is a small LLaMA with grouped-query attention and an untied
// head, fast enough for a training run in a unit test.
var tinyConfig = model.Config{
	Dim: 32, HiddenDim: 48, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8,
	VocabSize: 24, MaxSeqLen: 32, NormEps: 1e-5, RopeTheta: 10000,
}

// syntheticBase builds a random LLaMA-shaped model: projections with
// variance 1/In, norms 1 ± 0.2, a unit-variance embedding. With
// quantize, the block linears are quantized to NF4 (QLoRA's options) one at
// a time, right after they are generated, so the dense copies are never all
// alive together.
func syntheticBase(t testing.TB, c model.Config, seed uint64, quantized bool) *model.Weights {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	fill := func(n int, std, mean float64) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(mean + std*rng.NormFloat64())
		}
		return out
	}
	linear := func(lin *model.Linear) {
		lin.Dense = fill(lin.Out*lin.In, 1/math.Sqrt(float64(lin.In)), 0)
		if quantized {
			m, err := nf4.Quantize(lin.Dense, lin.Out, lin.In, nf4.Options{})
			if err != nil {
				t.Fatal(err)
			}
			lin.Dense, lin.Quantized = nil, m
		}
	}
	w := model.NewWeights(c)
	w.Embedding, w.Norm = fill(c.VocabSize*c.Dim, 1, 0), fill(c.Dim, 0.2, 1)
	for l := range w.Layers {
		layer := &w.Layers[l]
		layer.AttnNorm = fill(c.Dim, 0.2, 1)
		for _, lin := range []*model.Linear{layer.Q, layer.K, layer.V, layer.O} {
			linear(lin)
		}
		layer.MLPNorm = fill(c.Dim, 0.2, 1)
		for _, lin := range []*model.Linear{layer.Gate, layer.Up, layer.Down} {
			linear(lin)
		}
	}
	if c.TiedOutput {
		w.Output.Dense = w.Embedding
	} else {
		w.Output.Dense = fill(c.VocabSize*c.Dim, 1/math.Sqrt(float64(c.Dim)), 0)
	}
	return w
}

// quantizeNF4 quantizes every block linear of w in place.
func quantizeNF4(t testing.TB, w *model.Weights) {
	t.Helper()
	err := w.Quantize(context.Background(), nf4.Quantizer(nf4.Options{}))
	if err != nil {
		t.Fatal(err)
	}
}

// countingExamples are sequences that count upwards modulo vocab from a
// random start: a pattern a LoRA adapter on a random base learns in a few
// dozen steps.
func countingExamples(seed uint64, n, length, vocab int) []Example {
	rng := rand.New(rand.NewPCG(seed, 2))
	out := make([]Example, n)
	for i := range out {
		start := rng.IntN(vocab)
		ex := Example{Tokens: make([]int, length), Loss: make([]bool, length)}
		for j := range length {
			ex.Tokens[j] = (start + j) % vocab
			ex.Loss[j] = j > 0
		}
		out[i] = ex
	}
	return out
}

// allLinear is QLoRA's adapter placement: every linear layer of the blocks.
func allLinear(r int, alpha, dropout float64) lora.Config {
	cfg := lora.DefaultConfig()
	cfg.R, cfg.Alpha, cfg.Dropout = r, alpha, dropout
	cfg.TargetModules = lora.ModuleRegex(lora.AllLinear)
	return cfg
}

func newAdapter(t testing.TB, base *model.Weights, cfg lora.Config, seed uint64) *lora.Adapter {
	t.Helper()
	a, err := lora.New(base, cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// adapterTensors copies every A and B of a, by module.
func adapterTensors(a *lora.Adapter) map[string][2][]float32 {
	out := map[string][2][]float32{}
	for _, name := range a.Modules() {
		p, _ := a.Pair(name)
		out[name] = [2][]float32{append([]float32(nil), p.A...), append([]float32(nil), p.B...)}
	}
	return out
}

// fingerprint hashes every bit of data reachable from v, unexported fields
// included (reflect reads them; only Interface() is refused), so that it
// covers the packed NF4 codes and scales, which the nf4 package does not
// expose. Functions and channels are skipped; pointers are followed once.
func fingerprint(v any) [32]byte {
	h := sha256.New()
	fingerprintValue(h, reflect.ValueOf(v), map[uintptr]bool{})
	return [32]byte(h.Sum(nil))
}

func fingerprintValue(h hash.Hash, v reflect.Value, seen map[uintptr]bool) {
	var buf [8]byte
	put := func(u uint64) {
		binary.LittleEndian.PutUint64(buf[:], u)
		h.Write(buf[:])
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			put(0)
			return
		}
		if seen[v.Pointer()] {
			return
		}
		seen[v.Pointer()] = true
		fingerprintValue(h, v.Elem(), seen)
	case reflect.Interface:
		if v.IsNil() {
			put(0)
			return
		}
		h.Write([]byte(v.Elem().Type().String()))
		fingerprintValue(h, v.Elem(), seen)
	case reflect.Struct:
		for i := range v.NumField() {
			fingerprintValue(h, v.Field(i), seen)
		}
	case reflect.Slice:
		put(uint64(v.Len()))
		if v.Type().Elem().Kind() == reflect.Uint8 {
			h.Write(v.Bytes())
			return
		}
		for i := range v.Len() {
			fingerprintValue(h, v.Index(i), seen)
		}
	case reflect.Array:
		for i := range v.Len() {
			fingerprintValue(h, v.Index(i), seen)
		}
	case reflect.Map:
		put(uint64(v.Len())) // iteration order is random: only the size
	case reflect.Float32, reflect.Float64:
		put(math.Float64bits(v.Float()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		put(uint64(v.Int()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		put(v.Uint())
	case reflect.Bool:
		if v.Bool() {
			put(1)
		} else {
			put(2)
		}
	case reflect.String:
		put(uint64(v.Len()))
		h.Write([]byte(v.String()))
	}
}
