package model

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/internal/hugemem"
	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"

	"github.com/golora/golora/internal/fsutil"
)

// File names of a Hugging Face checkpoint directory.
const (
	hfConfigFile  = "config.json"
	hfWeightsFile = "model.safetensors"
	hfIndexFile   = "model.safetensors.index.json"
)

// hfMaxDim bounds every size in config.json, far above any real LLaMA
// (hidden sizes reach 16k, vocabularies 256k), so that products of sizes
// cannot overflow and a corrupt config cannot ask for absurd allocations.
const hfMaxDim = 1 << 24

// hfConfig is the part of a Hugging Face config.json that describes a LLaMA
// model. Pointers tell absent keys (which take LlamaConfig's defaults) from
// zero values.
type hfConfig struct {
	Architectures                 []string        `json:"architectures"`
	ModelType                     string          `json:"model_type"`
	HiddenSize                    *int            `json:"hidden_size"`
	IntermediateSize              *int            `json:"intermediate_size"`
	NumHiddenLayers               *int            `json:"num_hidden_layers"`
	NumAttentionHeads             *int            `json:"num_attention_heads"`
	NumKeyValueHeads              *int            `json:"num_key_value_heads"`
	HeadDim                       *int            `json:"head_dim"`
	VocabSize                     *int            `json:"vocab_size"`
	MaxPositionEmbeddings         *int            `json:"max_position_embeddings"`
	RMSNormEps                    *float64        `json:"rms_norm_eps"`
	RopeTheta                     *float64        `json:"rope_theta"`
	TieWordEmbeddings             *bool           `json:"tie_word_embeddings"`
	HiddenAct                     string          `json:"hidden_act,omitempty"`
	RopeScaling                   json.RawMessage `json:"rope_scaling,omitempty"`
	RopeParameters                json.RawMessage `json:"rope_parameters,omitempty"`
	PartialRotaryFactor           *float64        `json:"partial_rotary_factor,omitempty"`
	OriginalMaxPositionEmbeddings *int            `json:"original_max_position_embeddings,omitempty"`
	UseSlidingWindow              *bool           `json:"use_sliding_window,omitempty"`
	SlidingWindow                 json.RawMessage `json:"sliding_window,omitempty"`
	AttentionBias                 bool            `json:"attention_bias"`
	MLPBias                       bool            `json:"mlp_bias"`
	TorchDType                    string          `json:"torch_dtype,omitempty"`
	QuantizationConfig            *bnbConfigJSON  `json:"quantization_config,omitempty"`
}

// loadHF loads a Hugging Face LLaMA checkpoint from dir: config.json, and the
// weights from model.safetensors or, when there is none, from the shards that
// model.safetensors.index.json lists. F32, F16 and BF16 (and F64) tensors are
// converted to float32 (with a quantizer, loadHFStream keeps a BF16 or F16
// embedding and output head 16-bit: see keep16); the files are
// memory-mapped while loading and closed before loadHF returns.
//
// Block linears saved 4-bit by bitsandbytes (transformers with a
// BitsAndBytesConfig, load_in_4bit and bnb_4bit_quant_type "nf4") load as
// NF4 matrices, bit for bit (see fromBnBTensors): for a weight K, the
// tensor K.quant_state.bitsandbytes__nf4 marks it. config.json must then
// carry the bitsandbytes quantization_config, and the two must agree: every
// block linear not named in llm_int8_skip_modules is 4-bit, the shape in each
// quant_state is the one config.json implies, and double quantization is as
// bnb_4bit_use_double_quant says. FP4 and 8-bit checkpoints, other
// quantization methods and a 4-bit lm_head are reported as unsupported.
//
// The architectures accepted are LLaMA (Llama 2 and 3, SmolLM2; rope_scaling
// or transformers 5's rope_parameters of type default, linear, llama3 or
// longrope — longrope's short factors in Weights.RopeFreqFactors, which are
// the ones applied: positions beyond original_max_position_embeddings are
// refused where they run; its long factors are kept in
// Weights.RopeLongFactors for writing the model back),
// Mistral (sliding_window, honoured in training and generation), Qwen2 (q/k/v biases), Qwen3 (q_norm, k_norm) and
// Phi-3 (qkv_proj and gate_up_proj split into q, k, v and gate, up at load;
// partial_rotary_factor) — by architectures (…ForCausalLM) or model_type.
// Other families, rope types, activations than SiLU, Qwen's
// use_sliding_window and attention or MLP biases elsewhere are refused with
// the file, the key and what is missing. Absent keys take the defaults of the
// family's transformers Config class (LlamaConfig: num_key_value_heads =
// num_attention_heads, head_dim = hidden_size / num_attention_heads (Qwen3:
// 128), rms_norm_eps 1e-6 (Phi-3: 1e-5), rope_theta 10000,
// max_position_embeddings 2048 (Mistral 131072, Qwen 32768, Phi-3 4096),
// tie_word_embeddings false; Mistral's sliding_window 4096). When the
// embeddings are tied, Output.Dense aliases Embedding and any lm_head.weight
// in the files is ignored; tensors loadHF does not need are ignored too.
func loadHF(dir string) (*Weights, error) {
	return loadHFStream(context.Background(), dir, streamOptions{})
}

// streamOptions are the LoadOptions a loader applies while it reads.
type streamOptions struct {
	// quantizer, if not nil, quantizes each block linear stored in float as
	// soon as it is read.
	quantizer quant.Quantizer
	// requantize also passes block linears stored quantized (GGUF block
	// formats) through quantizer, dequantized first.
	requantize bool
	// float32Embedding converts a 16-bit embedding and output head to
	// float32 even with a quantizer (see keep16).
	float32Embedding bool
	// uncached reads the checkpoint as one too large for the page cache
	// (see shouldEvict) whatever its size, for tests.
	uncached bool
	// weightsOnly skips a GGUF's tokenizer and chat template
	// (LoadOptions.WeightsOnly): a Llama-3 byte-level BPE takes a tenth of
	// a second of a core to build.
	weightsOnly bool
	// prefaultMin, if not 0, replaces the constant prefaultMin, for tests.
	prefaultMin int
}

// loadHFStream is loadHF quantizing block linears as it reads them (see
// streamOptions), checking ctx between tensors.
func loadHFStream(ctx context.Context, dir string, so streamOptions) (*Weights, error) {
	cfg, q, longrope, err := readHFConfig(filepath.Join(dir, hfConfigFile))
	if err != nil {
		return nil, err
	}
	src, err := openHFWeights(dir)
	if err != nil {
		return nil, err
	}
	defer src.close()
	w, err := src.weightsStream(ctx, cfg, q, so)
	if err != nil {
		return nil, err
	}
	w.RopeFreqFactors, w.RopeLongFactors = longrope.short, longrope.long
	return w, nil
}

// weightsStream reads the model that cfg and q (see readHFConfig) describe
// from s, quantizing as it reads (see streamOptions). Each tensor is read
// piece by piece through small buffers (pread), never through the file
// mapping, so with a quantizer the peak memory is the final weights plus
// about one float32 linear.
func (s *hfSource) weightsStream(ctx context.Context, cfg Config, q *hfQuant, so streamOptions) (w *Weights, err error) {
	// Check presence and shape of everything before converting anything, so
	// that a bad checkpoint fails fast and a corrupt layer count cannot make
	// loadHF allocate for layers that do not exist. What this finds is kept
	// for the reading below, each float tensor with the index of its range
	// in the reader.
	type found struct {
		slot      hfSlot
		quantized bool
		tensor    safetensors.Tensor
		path      string
		rng       int       // the index of the tensor's range; not set when quantized
		dest      []float32 // where its values go, when allocated ahead (prefaultDense)
	}
	var slots []found
	var ranges []streamRange
	for slot := range hfSlots(cfg) {
		if slot.parts != nil {
			if _, path, ok := s.lookup(slot.key + bnbNF4StateSuffix); ok {
				return nil, fmt.Errorf("model: %s: tensor %s: %w", path, slot.key+bnbNF4StateSuffix, errFusedQuantized)
			}
		}
		quantized, err := s.check(slot, q)
		if err != nil {
			return nil, err
		}
		f := found{slot: slot, quantized: quantized}
		if !quantized {
			if f.tensor, f.path, err = s.tensor(slot.key, slot.shape); err != nil {
				return nil, err
			}
		}
		slots = append(slots, f)
	}
	if err := s.checkUnused(cfg); err != nil {
		return nil, err
	}
	w = NewWeights(cfg)
	// toWorker reports whether slot's values go to the quantizer (a block
	// linear) rather than into float32 values of their own.
	toWorker := func(slot hfSlot) bool {
		return so.quantizer != nil && slot.linear != nil && slot.linear(w) != w.Output
	}
	var dense [][]float32
	if so.quantizer != nil {
		slots, dense = prefaultDense(slots, cmp.Or(so.prefaultMin, prefaultMin), func(f found) int {
			n, err := f.tensor.NumElements()
			if f.quantized || f.slot.parts != nil || toWorker(f.slot) || err != nil {
				return 0
			}
			if keep16(so, f.slot, f.tensor) {
				return n / 2 // the 16-bit values, in float32-sized words
			}
			return n
		})
		for i := range dense {
			slots[len(slots)-len(dense)+i].dest = dense[i]
		}
		stop := populateAll(dense)
		defer stop()
	}
	for i := range slots {
		if !slots[i].quantized {
			slots[i].rng = len(ranges)
			ranges = append(ranges, streamRange{s.fileOf(slots[i].slot.key), slots[i].tensor.Data})
		}
	}
	ra := startRangeLoad(ctx, ranges, so)
	defer func() {
		if err = ra.finish(err); err != nil {
			w = nil
		}
	}()
	sq := ra.sq
	for _, f := range slots {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("model: loading %s: %w", s.dir, err)
		}
		slot, t, path := f.slot, f.tensor, f.path
		if f.quantized {
			if slot.linear(w).Quantized, err = s.bnbMatrix(slot, q); err != nil {
				return nil, err
			}
			continue
		}
		dec, n, err := safetensorsDecoder(t)
		if err != nil {
			return nil, fmt.Errorf("model: %s: %w", path, err)
		}
		file := ra.file(f.rng)
		if toWorker(slot) {
			data := t.Data
			job := quantizeJob{lin: slot.linear(w), where: path, fill: func(dst []float32) (bool, error) {
				return decodeStreaming(dst, data, dec, file)
			}}
			if err := sq.add(job); err != nil {
				return nil, err
			}
			continue
		}
		if keep16(so, slot, t) {
			if err := s.read16(w, slot, t, path, f.dest, file); err != nil {
				return nil, err
			}
			continue
		}
		values := f.dest
		if values == nil {
			values = hugemem.Make[float32](n)
		}
		finite, err := decodeStreaming(values, t.Data, dec, file)
		if err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		slot.fill(w, values)
		if sq != nil && slot.parts != nil {
			// A fused projection (Phi-3) is split first, then each part
			// quantized by the worker, as the GGUF loader does: its
			// float32 copy lives only until its parts are quantized.
			for _, lin := range slot.parts(w) {
				part := lin.Dense
				if err := sq.add(quantizeJob{lin: lin, where: path, fill: func(dst []float32) (bool, error) {
					copy(dst, part)
					return finite, nil
				}}); err != nil {
					return nil, err
				}
			}
		}
	}
	if cfg.TiedOutput && w.EmbeddingMatrix != nil {
		w.Output.Quantized = w.EmbeddingMatrix
	} else if cfg.TiedOutput {
		w.Output.Dense = w.Embedding
	}
	return w, nil
}

// safetensorsDecoder returns the converter for t's dtype and its element
// count, checked against its data.
func safetensorsDecoder(t safetensors.Tensor) (floatDecoder, int, error) {
	n, err := t.NumElements()
	if err != nil {
		return floatDecoder{}, 0, err
	}
	switch t.DType {
	case safetensors.F32:
		return decodeF32, n, nil
	case safetensors.F16:
		return decodeF16, n, nil
	case safetensors.BF16:
		return decodeBF16, n, nil
	case safetensors.F64:
		return decodeF64, n, nil
	}
	return floatDecoder{}, 0, fmt.Errorf("tensor %s has dtype %s, want F32, F16, BF16 or F64", t.Name, t.DType)
}

// readHFConfig reads config.json into a validated Config and, when it has a
// quantization_config, the bitsandbytes settings it gives (nil otherwise),
// with longrope's factors as parseHFConfigFull returns them.
func readHFConfig(path string) (Config, *hfQuant, longropeFactors, error) {
	data, err := fsutil.ReadRegular(path, fsutil.ConfigLimit)
	if err != nil {
		return Config{}, nil, longropeFactors{}, fmt.Errorf("model: %w", err)
	}
	return parseHFConfigFull(path, data)
}

// parseHFConfig parses the bytes of the config.json at path into a
// validated Config and its bitsandbytes settings, as readHFConfig reads them.
func parseHFConfig(path string, data []byte) (Config, *hfQuant, error) {
	cfg, q, _, err := parseHFConfigFull(path, data)
	return cfg, q, err
}

// parseHFConfigFull is parseHFConfig that also returns longrope's factors
// (nil for other rope types), which belong in Weights.RopeFreqFactors and
// RopeLongFactors.
func parseHFConfigFull(path string, data []byte) (Config, *hfQuant, longropeFactors, error) {
	var hc hfConfig
	if err := json.Unmarshal(data, &hc); err != nil {
		return Config{}, nil, longropeFactors{}, fmt.Errorf("model: %s: %w", path, err)
	}
	cfg, factors, err := hc.configAndFactors()
	if err != nil {
		return Config{}, nil, longropeFactors{}, fmt.Errorf("model: %s: %w", path, err)
	}
	if hc.QuantizationConfig == nil {
		return cfg, nil, factors, nil
	}
	q, err := hc.QuantizationConfig.check()
	if err != nil {
		return Config{}, nil, longropeFactors{}, fmt.Errorf("model: %s: quantization_config: %w", path, err)
	}
	return cfg, q, factors, nil
}

// config checks that hc describes a LLaMA model the forward pass supports and
// converts it, applying LlamaConfig's defaults.
func (hc *hfConfig) config() (Config, error) {
	cfg, _, err := hc.configAndFactors()
	return cfg, err
}

// configAndFactors is config that also returns longrope's factors.
func (hc *hfConfig) configAndFactors() (Config, longropeFactors, error) {
	fam, err := hc.checkArchitecture()
	if err != nil {
		return Config{}, longropeFactors{}, err
	}
	cfg, err := hc.fields(fam)
	if err != nil {
		return Config{}, longropeFactors{}, err
	}
	headDim := hc.HeadDim
	if headDim == nil && fam.headDim > 0 {
		headDim = &fam.headDim
	}
	if err := checkHFConfig(&cfg, headDim); err != nil {
		return Config{}, longropeFactors{}, err
	}
	factors, err := hc.rotary(&cfg)
	if err != nil {
		return Config{}, longropeFactors{}, err
	}
	return cfg, factors, nil
}

// checkArchitecture settles which family hc describes and refuses what the
// forward pass does not implement.
func (hc *hfConfig) checkArchitecture() (family, error) {
	var fam family
	for _, a := range hc.Architectures {
		f, ok := familyByArchitecture(a)
		if !ok {
			return family{}, fmt.Errorf("architecture %q is not supported%s", a, unsupportedFeature(a))
		}
		fam = f
	}
	if hc.ModelType != "" {
		f, ok := familyByModelType(hc.ModelType)
		if !ok {
			return family{}, fmt.Errorf("model_type %q is not supported%s", hc.ModelType, unsupportedFeature(hc.ModelType))
		}
		if fam.modelType != "" && fam.modelType != f.modelType {
			return family{}, fmt.Errorf("architectures %q and model_type %q disagree", hc.Architectures, hc.ModelType)
		}
		fam = f
	}
	if len(hc.Architectures) == 0 && hc.ModelType == "" {
		return family{}, errors.New("neither architectures nor model_type says which model this is")
	}
	if hc.HiddenAct != "" && hc.HiddenAct != "silu" {
		return family{}, fmt.Errorf("hidden_act %q is not supported: only \"silu\"", hc.HiddenAct)
	}
	if hc.AttentionBias && !fam.qkvBias {
		return family{}, errors.New("attention_bias is not supported (biases are implemented on q, k and v for qwen2 only)")
	}
	if hc.MLPBias {
		return family{}, errors.New("mlp_bias is not supported")
	}
	if hc.UseSlidingWindow != nil && *hc.UseSlidingWindow {
		return family{}, errors.New("use_sliding_window true is not supported: golora's attention is not windowed")
	}
	if hc.PartialRotaryFactor != nil && fam.modelType != "phi3" {
		return family{}, fmt.Errorf("partial_rotary_factor is not supported for model_type %q", fam.modelType)
	}
	return fam, nil
}

// fields reads the config's values, with transformers' defaults for the
// optional ones; head_dim is settled by checkHFConfig.
func (hc *hfConfig) fields(fam family) (Config, error) {
	var errs []error
	required := func(key string, v *int) int {
		if v == nil {
			errs = append(errs, fmt.Errorf("%s is missing", key))
			return 0
		}
		return *v
	}
	orDefault := func(v *int, def int) int {
		if v == nil {
			return def
		}
		return *v
	}
	cfg := Config{
		Dim:       required("hidden_size", hc.HiddenSize),
		HiddenDim: required("intermediate_size", hc.IntermediateSize),
		Layers:    required("num_hidden_layers", hc.NumHiddenLayers),
		Heads:     required("num_attention_heads", hc.NumAttentionHeads),
		VocabSize: required("vocab_size", hc.VocabSize),
		MaxSeqLen: orDefault(hc.MaxPositionEmbeddings, fam.maxSeqLen),
		NormEps:   fam.normEps,
		RopeTheta: 10000,
		QKNorm:    fam.qkNorm,
		QKVBias:   fam.qkvBias,
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	cfg.KVHeads = orDefault(hc.NumKeyValueHeads, cfg.Heads)
	if hc.RMSNormEps != nil {
		cfg.NormEps = *hc.RMSNormEps
	}
	if hc.RopeTheta != nil {
		cfg.RopeTheta = *hc.RopeTheta
	}
	if hc.TieWordEmbeddings != nil {
		cfg.TiedOutput = *hc.TieWordEmbeddings
	}
	if fam.modelType != "llama" {
		cfg.Arch = fam.modelType
	}
	window, err := hc.slidingWindow(fam)
	if err != nil {
		return Config{}, err
	}
	cfg.SlidingWindow = window
	return cfg, nil
}

// checkHFConfig checks the ranges of cfg's values and sets its HeadDim:
// headDim when the config gives it, else hidden_size / num_attention_heads.
func checkHFConfig(cfg *Config, headDim *int) error {
	for _, f := range []struct {
		key string
		v   int
	}{
		{"hidden_size", cfg.Dim}, {"intermediate_size", cfg.HiddenDim}, {"num_hidden_layers", cfg.Layers},
		{"num_attention_heads", cfg.Heads}, {"num_key_value_heads", cfg.KVHeads}, {"vocab_size", cfg.VocabSize},
		{"max_position_embeddings", cfg.MaxSeqLen},
	} {
		if f.v <= 0 || f.v > hfMaxDim {
			return fmt.Errorf("%s %d is out of range [1, %d]", f.key, f.v, hfMaxDim)
		}
	}
	if cfg.Heads%cfg.KVHeads != 0 {
		return fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", cfg.Heads, cfg.KVHeads)
	}
	if headDim != nil {
		cfg.HeadDim = *headDim
	} else {
		if cfg.Dim%cfg.Heads != 0 {
			return fmt.Errorf("hidden_size %d is not a multiple of num_attention_heads %d, and head_dim is not given", cfg.Dim, cfg.Heads)
		}
		cfg.HeadDim = cfg.Dim / cfg.Heads
	}
	if cfg.HeadDim <= 0 || cfg.HeadDim > hfMaxDim || cfg.HeadDim%2 != 0 {
		return fmt.Errorf("head_dim %d must be positive and even (RoPE rotates pairs)", cfg.HeadDim)
	}
	if !(cfg.NormEps >= 0) || math.IsInf(cfg.NormEps, 0) {
		return fmt.Errorf("rms_norm_eps %v must be non-negative and finite", cfg.NormEps)
	}
	if !(cfg.RopeTheta > 0) || math.IsInf(cfg.RopeTheta, 0) {
		return fmt.Errorf("rope_theta %v must be positive and finite", cfg.RopeTheta)
	}
	return nil
}

// hfSlot is one tensor of a Hugging Face LLaMA checkpoint: its key, its shape
// and where its values live in a Weights.
type hfSlot struct {
	key    string
	shape  []int
	values func(w *Weights) *[]float32
	linear func(w *Weights) *Linear // nil for embeddings, norms, biases and fused projections
	// parts, for a fused projection (Phi-3's qkv_proj and gate_up_proj),
	// returns the linears whose rows it stacks, in order; values then
	// returns a fresh concatenation of their Dense weights, for writing.
	parts func(w *Weights) []*Linear
}

// fill stores values, read from the checkpoint, in w.
func (slot hfSlot) fill(w *Weights, values []float32) {
	if slot.parts == nil {
		*slot.values(w) = values
		return
	}
	for _, lin := range slot.parts(w) {
		n := lin.Out * lin.In
		lin.Dense, values = values[:n:n], values[n:]
	}
}

// hfSlots yields the tensors a checkpoint for cfg holds, in the order
// transformers' modules define them. lm_head.weight is included only when the
// output head is not tied to the embedding. It is an iterator so that a config
// claiming millions of layers costs nothing until a tensor is found missing.
func hfSlots(cfg Config) iter.Seq[hfSlot] {
	shapes := linearShapes(cfg)
	vector := func(key string, n int, values func(w *Weights) *[]float32) hfSlot {
		return hfSlot{key: key, shape: []int{n}, values: values}
	}
	matrix := func(key string, out, in int, lin func(w *Weights) *Linear) hfSlot {
		return hfSlot{
			key: key, shape: []int{out, in}, linear: lin,
			values: func(w *Weights) *[]float32 { return &lin(w).Dense },
		}
	}
	// blockLinear is linear i of Layer.Linears in block l.
	blockLinear := func(l, i int) hfSlot {
		return matrix(fmt.Sprintf("model.layers.%d.%s.weight", l, modules[i]), shapes[i][0], shapes[i][1],
			func(w *Weights) *Linear { return *w.Layers[l].Linears()[i].Linear })
	}
	// fused stacks the rows of linears first… of block l in one tensor.
	fused := func(l int, module string, first ...int) hfSlot {
		out := 0
		for _, i := range first {
			out += shapes[i][0]
		}
		parts := func(w *Weights) []*Linear {
			lins := make([]*Linear, len(first))
			for j, i := range first {
				lins[j] = *w.Layers[l].Linears()[i].Linear
			}
			return lins
		}
		return hfSlot{
			key: fmt.Sprintf("model.layers.%d.%s.weight", l, module), shape: []int{out, shapes[first[0]][1]}, parts: parts,
			values: func(w *Weights) *[]float32 {
				var all []float32
				for _, lin := range parts(w) {
					all = append(all, lin.Dense...)
				}
				return &all
			},
		}
	}
	// bias is the bias of linear i (q, k or v) of block l.
	bias := func(l, i int) hfSlot {
		return vector(fmt.Sprintf("model.layers.%d.%s.bias", l, modules[i]), shapes[i][0],
			func(w *Weights) *[]float32 { return &(*w.Layers[l].Linears()[i].Linear).Bias })
	}
	isFused := cfg.Arch == "phi3"
	return func(yield func(hfSlot) bool) {
		if !yield(hfSlot{
			key: hfEmbeddingKey, shape: []int{cfg.VocabSize, cfg.Dim},
			values: func(w *Weights) *[]float32 { return &w.Embedding },
		}) {
			return
		}
		for l := range cfg.Layers {
			p := fmt.Sprintf("model.layers.%d.", l)
			// The norms sit where transformers' modules define them: before
			// the attention's four linears and before the MLP's three.
			slots := []hfSlot{vector(p+"input_layernorm.weight", cfg.Dim, func(w *Weights) *[]float32 { return &w.Layers[l].AttnNorm })}
			for i := range modules {
				if i == 4 {
					slots = append(slots, vector(p+"post_attention_layernorm.weight", cfg.Dim, func(w *Weights) *[]float32 { return &w.Layers[l].MLPNorm }))
				}
				switch {
				case isFused && i == 0:
					slots = append(slots, fused(l, "self_attn.qkv_proj", 0, 1, 2))
				case isFused && i == 4:
					slots = append(slots, fused(l, "mlp.gate_up_proj", 4, 5))
				case isFused && (i == 1 || i == 2 || i == 5):
				default:
					slots = append(slots, blockLinear(l, i))
				}
				if cfg.QKVBias && i < 3 {
					slots = append(slots, bias(l, i))
				}
				if cfg.QKNorm && i == 3 {
					slots = append(slots,
						vector(p+"self_attn.q_norm.weight", cfg.HeadDim, func(w *Weights) *[]float32 { return &w.Layers[l].QNorm }),
						vector(p+"self_attn.k_norm.weight", cfg.HeadDim, func(w *Weights) *[]float32 { return &w.Layers[l].KNorm }))
				}
			}
			for _, s := range slots {
				if !yield(s) {
					return
				}
			}
		}
		if !yield(vector("model.norm.weight", cfg.Dim, func(w *Weights) *[]float32 { return &w.Norm })) {
			return
		}
		if !cfg.TiedOutput {
			yield(matrix("lm_head.weight", cfg.VocabSize, cfg.Dim, func(w *Weights) *Linear { return w.Output }))
		}
	}
}

// hfSource finds the tensors of a checkpoint across its safetensors files.
type hfSource struct {
	dir   string
	files map[string]*safetensors.File // by file name within dir
	where map[string]string            // tensor key -> file name, from the index; nil for one file
}

// openHFWeights opens model.safetensors in dir or, failing that, every shard
// that model.safetensors.index.json names.
func openHFWeights(dir string) (*hfSource, error) {
	src := &hfSource{dir: dir, files: map[string]*safetensors.File{}}
	single := filepath.Join(dir, hfWeightsFile)
	if _, err := os.Stat(single); err == nil {
		f, err := safetensors.Open(single)
		if err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		src.files[hfWeightsFile] = f
		return src, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("model: %w", err)
	}

	indexPath := filepath.Join(dir, hfIndexFile)
	data, err := fsutil.ReadRegular(indexPath, fsutil.ConfigLimit)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("model: %s holds neither %s nor %s", dir, hfWeightsFile, hfIndexFile)
	}
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, fmt.Errorf("model: %s: %w", indexPath, err)
	}
	if len(index.WeightMap) == 0 {
		return nil, fmt.Errorf("model: %s: weight_map is missing or empty", indexPath)
	}
	shards := make([]string, 0, len(index.WeightMap))
	for key, name := range index.WeightMap {
		// Shards sit next to the index; anything else could read files
		// outside the checkpoint.
		if !filepath.IsLocal(name) || filepath.Base(name) != name || name != filepath.FromSlash(name) {
			return nil, fmt.Errorf("model: %s: tensor %q: shard %q is not a file name in the checkpoint directory", indexPath, key, name)
		}
		shards = append(shards, name)
	}
	slices.Sort(shards)
	shards = slices.Compact(shards)
	src.where = index.WeightMap
	for _, name := range shards {
		f, err := safetensors.Open(filepath.Join(dir, name))
		if err != nil {
			src.close()
			return nil, fmt.Errorf("model: shard listed in %s: %w", indexPath, err)
		}
		src.files[name] = f
	}
	return src, nil
}

// tensor returns the tensor key, checked to hold floating-point data of the
// given shape, and the path of its file.
func (s *hfSource) tensor(key string, shape []int) (safetensors.Tensor, string, error) {
	name := hfWeightsFile
	if s.where != nil {
		var ok bool
		if name, ok = s.where[key]; !ok {
			return safetensors.Tensor{}, "", fmt.Errorf("model: %s: tensor %s is missing from weight_map", filepath.Join(s.dir, hfIndexFile), key)
		}
	}
	path := filepath.Join(s.dir, name)
	t, ok := s.files[name].Tensor(key)
	if !ok {
		return safetensors.Tensor{}, "", fmt.Errorf("model: %s: tensor %s is missing", path, key)
	}
	switch t.DType {
	case safetensors.F32, safetensors.F16, safetensors.BF16, safetensors.F64:
	default:
		return safetensors.Tensor{}, "", fmt.Errorf("model: %s: tensor %s has dtype %s, want F32, F16, BF16 or F64", path, key, t.DType)
	}
	if !slices.Equal(t.Shape, shape) {
		return safetensors.Tensor{}, "", fmt.Errorf("model: %s: tensor %s has shape %v, want %v", path, key, t.Shape, shape)
	}
	return t, path, nil
}

// fileOf returns the file that holds key, which tensor has found.
func (s *hfSource) fileOf(key string) *safetensors.File {
	if s.where == nil {
		return s.files[hfWeightsFile]
	}
	return s.files[s.where[key]]
}

// lookup returns the tensor key, if the checkpoint has it, and the path of
// its file.
func (s *hfSource) lookup(key string) (safetensors.Tensor, string, bool) {
	name := hfWeightsFile
	if s.where != nil {
		var ok bool
		if name, ok = s.where[key]; !ok {
			return safetensors.Tensor{}, "", false
		}
	}
	t, ok := s.files[name].Tensor(key)
	return t, filepath.Join(s.dir, name), ok
}

func (s *hfSource) close() {
	for _, f := range s.files {
		// Read-only mappings: an unmap error loses nothing.
		f.Close()
	}
}

// DType is a floating-point storage type for the float32 tensors WriteHF
// writes (embeddings, norms, dense linears).
type DType = safetensors.DType

// The dtypes WriteHF writes.
const (
	F32  DType = safetensors.F32
	F16  DType = safetensors.F16
	BF16 DType = safetensors.BF16
)

// WriteHF writes w to dir as a Hugging Face LLaMA checkpoint: config.json and
// model.safetensors (metadata {"format": "pt"}), its float tensors in dtype
// F32, F16 or BF16 (narrowing rounds to nearest even). dir is created if
// needed. Each file is replaced atomically, the weights first; the pair is
// not: if writing config.json fails, dir holds the new weights beside any
// older config.json.
//
// NF4 block linears (*nf4.Matrix) are written as bitsandbytes saves a 4-bit
// model (see bnbTensors), bit for bit, and config.json gets the
// quantization_config that transformers writes for it, so that transformers
// and bitsandbytes load the checkpoint as a 4-bit model and loadHF gives back
// the same matrices. Block linears left dense are listed in
// llm_int8_skip_modules. The embedding, the norms and the output head are
// always float tensors of dtype. Other quantized formats, an NF4 output head
// and a mix of double-quantized and plain NF4 matrices (which one
// bnb_4bit_use_double_quant cannot describe) are refused.
//
// With Config.TiedOutput, lm_head.weight is not written and Output, if set,
// must equal the embedding. Longrope's factors (Weights.RopeFreqFactors and
// RopeLongFactors) go into rope_scaling as Phi-3's config.json has them;
// rope frequency factors without long ones (a GGUF's rope_freqs tensor)
// have no Hugging Face form and are refused.
func WriteHF(dir string, w *Weights, dtype DType) error {
	torchDType, ok := map[safetensors.DType]string{
		safetensors.F32: "float32", safetensors.F16: "float16", safetensors.BF16: "bfloat16",
	}[dtype]
	if !ok {
		return fmt.Errorf("model: WriteHF: dtype %q is not F32, F16 or BF16", dtype)
	}
	if err := checkHFWeights(w); err != nil {
		return fmt.Errorf("model: WriteHF: %w", err)
	}
	quantConfig, err := newBnBConfig(w)
	if err != nil {
		return fmt.Errorf("model: WriteHF: %w", err)
	}
	cfg := w.Config
	var tensors []safetensors.StreamTensor
	for s := range hfSlots(cfg) {
		if s.linear != nil {
			if m, ok := s.linear(w).Quantized.(*nf4.Matrix); ok {
				bnb, err := bnbStreamTensors(strings.TrimSuffix(s.key, ".weight"), m)
				if err != nil {
					return fmt.Errorf("model: WriteHF: %s: %w", s.key, err)
				}
				tensors = append(tensors, bnb...)
				continue
			}
		}
		tensors = append(tensors, safetensors.StreamTensor{
			Name: s.key, DType: dtype, Shape: s.shape,
			WriteData: func(out io.Writer) error {
				values, err := hfFloat32s(w, s)
				if err != nil {
					return err
				}
				return safetensors.EncodeFloat32(out, dtype, values)
			},
		})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("model: WriteHF: %w", err)
	}
	if err := safetensors.WriteStreamFile(filepath.Join(dir, hfWeightsFile), tensors, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("model: WriteHF: %w", err)
	}

	intp := func(v int) *int { return &v }
	fam, err := familyOf(cfg.Arch)
	if err != nil {
		return fmt.Errorf("model: WriteHF: %w", err)
	}
	rope, window, partial, topOriginal, err := hfRopeJSON(cfg, w.RopeFreqFactors, w.RopeLongFactors)
	if err != nil {
		return fmt.Errorf("model: WriteHF: %w", err)
	}
	hc := hfConfig{
		Architectures:                 []string{fam.architecture},
		ModelType:                     fam.modelType,
		HiddenSize:                    intp(cfg.Dim),
		IntermediateSize:              intp(cfg.HiddenDim),
		NumHiddenLayers:               intp(cfg.Layers),
		NumAttentionHeads:             intp(cfg.Heads),
		NumKeyValueHeads:              intp(cfg.KVHeads),
		HeadDim:                       intp(cfg.HeadDim),
		VocabSize:                     intp(cfg.VocabSize),
		MaxPositionEmbeddings:         intp(cfg.MaxSeqLen),
		RMSNormEps:                    &cfg.NormEps,
		RopeTheta:                     &cfg.RopeTheta,
		TieWordEmbeddings:             &cfg.TiedOutput,
		HiddenAct:                     "silu",
		RopeScaling:                   rope,
		SlidingWindow:                 window,
		PartialRotaryFactor:           partial,
		AttentionBias:                 cfg.QKVBias,
		OriginalMaxPositionEmbeddings: topOriginal,
		TorchDType:                    torchDType,
		QuantizationConfig:            quantConfig,
	}
	data, err := json.MarshalIndent(hc, "", "  ")
	if err != nil {
		return fmt.Errorf("model: WriteHF: %w", err)
	}
	data = append(data, '\n')
	err = atomicfile.WriteFile(filepath.Join(dir, hfConfigFile), func(out io.Writer) error {
		_, err := out.Write(data)
		return err
	}, 0o644)
	if err != nil {
		return fmt.Errorf("model: WriteHF: %w", err)
	}
	return nil
}

// hfFloat32s returns the float32 values WriteHF writes for slot s of w: a
// 16-bit embedding or head (quant.Half) widened, anything else as held.
func hfFloat32s(w *Weights, s hfSlot) ([]float32, error) {
	switch {
	case s.key == hfEmbeddingKey:
		return w.EmbeddingFloat32()
	case s.linear != nil:
		return s.linear(w).float32s()
	}
	return *s.values(w), nil
}

// hfEmbeddingKey is the embedding's tensor in a Hugging Face checkpoint.
const hfEmbeddingKey = "model.embed_tokens.weight"

// checkHFWeights reports the first way in which w cannot be written as a
// dense Hugging Face checkpoint.
func checkHFWeights(w *Weights) error {
	if w == nil {
		return errors.New("weights are nil")
	}
	fam, err := familyOf(w.Config.Arch)
	if err != nil {
		return err
	}
	if fam.qkvBias != w.Config.QKVBias || fam.qkNorm != w.Config.QKNorm {
		return fmt.Errorf("config: model_type %q has q/k/v biases %t and q/k norms %t, the weights %t and %t",
			fam.modelType, fam.qkvBias, fam.qkNorm, w.Config.QKVBias, w.Config.QKNorm)
	}
	hc := hfConfig{
		ModelType: fam.modelType, HiddenSize: &w.Config.Dim, IntermediateSize: &w.Config.HiddenDim,
		NumHiddenLayers: &w.Config.Layers, NumAttentionHeads: &w.Config.Heads,
		NumKeyValueHeads: &w.Config.KVHeads, HeadDim: &w.Config.HeadDim, VocabSize: &w.Config.VocabSize,
		MaxPositionEmbeddings: &w.Config.MaxSeqLen, RMSNormEps: &w.Config.NormEps, RopeTheta: &w.Config.RopeTheta,
	}
	if _, err := hc.config(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if len(w.Layers) != w.Config.Layers {
		return fmt.Errorf("config says %d layers, weights hold %d", w.Config.Layers, len(w.Layers))
	}
	if w.RopeFreqFactors != nil && (w.RopeLongFactors == nil || w.Config.RopeScaling.Type != "longrope") {
		return errors.New("rope frequency factors (a GGUF rope_freqs tensor, or longrope's short factors without its long ones) cannot be written as a Hugging Face config")
	}
	for s := range hfSlots(w.Config) {
		for _, lin := range partsOf(s, w) {
			if lin.Quantized != nil {
				return fmt.Errorf("%s: %s is %s-quantized: fused projections are written dense only; dequantize it first",
					s.key, lin.Name, lin.Quantized.Format())
			}
		}
		if s.linear != nil {
			lin := s.linear(w)
			switch {
			case lin == nil:
				return fmt.Errorf("%s: linear layer is nil", s.key)
			case lin.Out != s.shape[0] || lin.In != s.shape[1]:
				return fmt.Errorf("%s: linear layer is [%d, %d], want %v", s.key, lin.Out, lin.In, s.shape)
			case lin.Quantized != nil && lin == w.Output && isHalf(lin.Quantized):
				// A 16-bit head is written widened, as its float values.
				continue
			case lin.Quantized != nil && lin == w.Output:
				return fmt.Errorf("%s: the output head is %s-quantized; bitsandbytes checkpoints keep lm_head in float, so dequantize it first",
					s.key, lin.Quantized.Format())
			case lin.Quantized != nil:
				if _, ok := lin.Quantized.(*nf4.Matrix); !ok {
					return fmt.Errorf("%s: %s-quantized weights cannot be written: only NF4 has a checkpoint layout (bitsandbytes'); dequantize them first",
						s.key, lin.Quantized.Format())
				}
				if r, c := lin.Quantized.Dims(); r != s.shape[0] || c != s.shape[1] {
					return fmt.Errorf("%s: quantized matrix is [%d, %d], want %v", s.key, r, c, s.shape)
				}
				if lin.Dense != nil {
					return fmt.Errorf("%s: linear layer holds both dense and quantized data", s.key)
				}
				continue
			}
		}
		if s.key == hfEmbeddingKey && w.EmbeddingMatrix != nil {
			if err := w.checkEmbedding(); err != nil {
				return err
			}
			continue
		}
		if n := len(*s.values(w)); n != hfElements(s.shape) {
			return fmt.Errorf("%s: %d values, want %v", s.key, n, s.shape)
		}
	}
	if w.Config.TiedOutput && w.Output != nil && !w.headIsEmbedding() {
		if w.Output.Quantized != nil || !hfSameValues(w.Output.Dense, w.Embedding) {
			return errors.New("lm_head: tie_word_embeddings is set but the output head differs from the embedding")
		}
	}
	return nil
}

// isHalf reports whether m is a 16-bit float matrix (quant.Half).
func isHalf(m quant.Matrix) bool {
	_, ok := m.(*quant.Half)
	return ok
}

// hfElements returns the number of elements of shape.
func hfElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// hfSameValues reports whether a and b are the same slice or hold the same
// bits (so that NaNs compare equal to themselves).
func hfSameValues(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// partsOf returns the linears a fused slot stacks, or nil.
func partsOf(s hfSlot, w *Weights) []*Linear {
	if s.parts == nil {
		return nil
	}
	return s.parts(w)
}

// hfRopeJSON returns the rope_scaling and sliding_window values of
// config.json for cfg, its partial_rotary_factor (nil for a full rotation)
// and, for longrope, its top-level original_max_position_embeddings (nil
// otherwise). longrope is written with its factors (short and long) as
// Phi-3's config.json has it: the original context at the top level and
// only type and the factors in rope_scaling, which older transformers'
// Phi3Config insists on; a factor or attention factor that this form would
// not give back is written in rope_scaling instead (transformers 4.45+).
func hfRopeJSON(cfg Config, short, long []float32) (rope, window json.RawMessage, partial *float64, topOriginal *int, err error) {
	rs := cfg.RopeScaling
	switch rs.Type {
	case "", "default":
	case "longrope":
		r := map[string]any{"short_factor": jsonFloats(short), "long_factor": jsonFloats(long)}
		orig := rs.OriginalMaxPos
		if rs.Factor == float64(cfg.MaxSeqLen)/float64(orig) && rs.AttentionFactor == longropeAttention(rs.Factor, orig) {
			r["type"] = "longrope"
			topOriginal = &orig
		} else {
			r["rope_type"] = "longrope"
			r["factor"] = rs.Factor
			r["original_max_position_embeddings"] = orig
			r["attention_factor"] = rs.AttentionFactor
		}
		if rope, err = json.Marshal(r); err != nil {
			return nil, nil, nil, nil, err
		}
	default:
		r := map[string]any{"rope_type": rs.Type, "factor": rs.Factor}
		if rs.Type == "llama3" {
			r["low_freq_factor"] = rs.LowFreqFactor
			r["high_freq_factor"] = rs.HighFreqFactor
			r["original_max_position_embeddings"] = rs.OriginalMaxPos
		}
		if rope, err = json.Marshal(r); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	// A family with a default window needs an explicit null to have none.
	window = json.RawMessage("null")
	if cfg.SlidingWindow > 0 {
		window = json.RawMessage(fmt.Sprint(cfg.SlidingWindow))
	}
	if cfg.RotaryDim > 0 && cfg.RotaryDim < cfg.HeadDim {
		f := float64(cfg.RotaryDim) / float64(cfg.HeadDim)
		partial = &f
	}
	return rope, window, partial, topOriginal, nil
}

// jsonFloats writes float32 values by their shortest decimal form, which
// reads back as the same float32.
func jsonFloats(v []float32) []json.Number {
	out := make([]json.Number, len(v))
	for i, x := range v {
		out[i] = json.Number(strconv.FormatFloat(float64(x), 'g', -1, 32))
	}
	return out
}
