package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/nf4"
)

// Suffixes that mark a weight K saved 4-bit by bitsandbytes: the uint8 bytes
// of its QuantState JSON are stored as K + suffix.
const (
	bnbNF4StateSuffix = ".quant_state.bitsandbytes__nf4"
	bnbFP4StateSuffix = ".quant_state.bitsandbytes__fp4"
)

// bnbConfigJSON is the quantization_config object of config.json for a
// bitsandbytes model: transformers' BitsAndBytesConfig.to_dict, fields in the
// sorted order save_pretrained writes them. Pointers tell absent keys from
// zero values when reading; WriteHF sets every field, as transformers does.
type bnbConfigJSON struct {
	LoadIn4bitAttr       *bool       `json:"_load_in_4bit,omitempty"`
	LoadIn8bitAttr       *bool       `json:"_load_in_8bit,omitempty"`
	ComputeDType         *string     `json:"bnb_4bit_compute_dtype,omitempty"`
	QuantStorage         *string     `json:"bnb_4bit_quant_storage,omitempty"`
	QuantType            *string     `json:"bnb_4bit_quant_type,omitempty"`
	UseDoubleQuant       *bool       `json:"bnb_4bit_use_double_quant,omitempty"`
	EnableFP32CPUOffload *bool       `json:"llm_int8_enable_fp32_cpu_offload,omitempty"`
	HasFP16Weight        *bool       `json:"llm_int8_has_fp16_weight,omitempty"`
	SkipModules          []string    `json:"llm_int8_skip_modules"`
	Threshold            json.Number `json:"llm_int8_threshold,omitempty"`
	LoadIn4bit           *bool       `json:"load_in_4bit,omitempty"`
	LoadIn8bit           *bool       `json:"load_in_8bit,omitempty"`
	QuantMethod          string      `json:"quant_method"`
}

// hfQuant is what loadHF checks the tensors against: a validated
// bitsandbytes 4-bit NF4 quantization_config.
type hfQuant struct {
	doubleQuant *bool    // bnb_4bit_use_double_quant, nil when absent
	skip        []string // llm_int8_skip_modules: modules kept in float
}

// check validates a quantization_config read from config.json. Absent keys
// take BitsAndBytesConfig's defaults; note that its default quant type is
// "fp4".
func (c *bnbConfigJSON) check() (*hfQuant, error) {
	if c.QuantMethod != "bitsandbytes" {
		return nil, fmt.Errorf("quant_method %q is not supported: only bitsandbytes 4-bit NF4 checkpoints load", c.QuantMethod)
	}
	firstSet := func(a, b *bool) bool {
		switch {
		case a != nil:
			return *a
		case b != nil:
			return *b
		}
		return false
	}
	if firstSet(c.LoadIn8bit, c.LoadIn8bitAttr) {
		return nil, errors.New("load_in_8bit: 8-bit (LLM.int8) checkpoints are not supported, only 4-bit NF4")
	}
	if !firstSet(c.LoadIn4bit, c.LoadIn4bitAttr) {
		return nil, errors.New("load_in_4bit is not true: only 4-bit NF4 bitsandbytes checkpoints are supported")
	}
	quantType := "fp4"
	if c.QuantType != nil {
		quantType = *c.QuantType
	}
	switch quantType {
	case "nf4":
	case "fp4":
		return nil, errors.New(`bnb_4bit_quant_type is "fp4" (the default when absent): fp4 checkpoints are not supported, only nf4`)
	default:
		return nil, fmt.Errorf("bnb_4bit_quant_type %q: want \"nf4\"", quantType)
	}
	if c.QuantStorage != nil && *c.QuantStorage != "uint8" {
		return nil, fmt.Errorf("bnb_4bit_quant_storage %q is not supported: only uint8", *c.QuantStorage)
	}
	if c.ComputeDType != nil {
		switch *c.ComputeDType {
		case "float32", "float16", "bfloat16":
		default:
			return nil, fmt.Errorf("bnb_4bit_compute_dtype %q: want float32, float16 or bfloat16", *c.ComputeDType)
		}
	}
	return &hfQuant{doubleQuant: c.UseDoubleQuant, skip: c.SkipModules}, nil
}

// skips reports whether llm_int8_skip_modules keeps module in float. An entry
// names a module or a run of whole dotted components of its name, so
// "lm_head", "self_attn" and "model.layers.0.mlp.up_proj" each skip what they
// name and "proj" skips nothing.
func (q *hfQuant) skips(module string) bool {
	for _, s := range q.skip {
		if s != "" && strings.Contains("."+module+".", "."+s+".") {
			return true
		}
	}
	return false
}

// newBnBConfig returns the quantization_config transformers writes for a
// bitsandbytes 4-bit NF4 model with w's block linears, or nil when none of
// them is quantized. checkHFWeights has ensured that every quantized block
// linear is an *nf4.Matrix.
func newBnBConfig(w *Weights) (*bnbConfigJSON, error) {
	var dense []string
	var doubleQuant []bool
	for _, lin := range w.Linears() {
		m, ok := lin.Quantized.(*nf4.Matrix)
		if !ok {
			dense = append(dense, lin.Name)
			continue
		}
		if len(doubleQuant) > 0 && doubleQuant[0] != m.DoubleQuant() {
			return nil, fmt.Errorf("%s has double quantization %s but %s has it %s: bnb_4bit_use_double_quant cannot describe both",
				lin.Name, onOff(m.DoubleQuant()), w.Linears()[0].Name, onOff(doubleQuant[0]))
		}
		doubleQuant = append(doubleQuant, m.DoubleQuant())
	}
	if len(doubleQuant) == 0 {
		return nil, nil
	}
	var skip []string
	if len(dense) > 0 {
		// An explicit list replaces transformers' default, which keeps only
		// the output head in float; so the head goes first.
		skip = append([]string{"lm_head"}, dense...)
	}
	yes, no := true, false
	str := func(s string) *string { return &s }
	return &bnbConfigJSON{
		LoadIn4bitAttr:       &yes,
		LoadIn8bitAttr:       &no,
		ComputeDType:         str("float32"), // golora computes in float32
		QuantStorage:         str("uint8"),
		QuantType:            str("nf4"),
		UseDoubleQuant:       &doubleQuant[0],
		EnableFP32CPUOffload: &no,
		HasFP16Weight:        &no,
		SkipModules:          skip,
		// transformers checks that the threshold is a Python float: 6 would
		// be read as an int and refused.
		Threshold:   "6.0",
		LoadIn4bit:  &yes,
		LoadIn8bit:  &no,
		QuantMethod: "bitsandbytes",
	}, nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// bnbStreamTensors returns the bitsandbytes tensors of m for the layer named
// prefix, to be written by safetensors.WriteStream. Their data is produced
// when written, one matrix at a time, rather than all copied up front: the
// tensors of a matrix are written in a row, so the copy bnbTensors makes for
// the first one serves the others and is dropped after the last.
func bnbStreamTensors(prefix string, m *nf4.Matrix) ([]safetensors.StreamTensor, error) {
	headers, err := bnbTensors(prefix, m)
	if err != nil {
		return nil, err
	}
	var current []safetensors.Tensor
	out := make([]safetensors.StreamTensor, len(headers))
	for i, h := range headers {
		name := h.Name
		last := i == len(headers)-1
		out[i] = safetensors.StreamTensor{
			Name: name, DType: h.DType, Shape: h.Shape,
			WriteData: func(w io.Writer) error {
				if current == nil {
					tensors, err := bnbTensors(prefix, m)
					if err != nil {
						return err
					}
					current = tensors
				}
				if len(current) != len(headers) || current[i].Name != name {
					return fmt.Errorf("bitsandbytes tensors of %s changed while writing", prefix)
				}
				_, err := w.Write(current[i].Data)
				if last {
					current = nil
				}
				return err
			},
		}
	}
	return out, nil
}

// check reports whether the slot s is stored 4-bit in the bitsandbytes
// layout, after checking that this agrees with config.json's
// quantization_config q (nil if it has none) and, for a 4-bit weight, that
// its quant_state gives the expected shape. It reads only the quant_state.
func (s *hfSource) check(slot hfSlot, q *hfQuant) (quantized bool, err error) {
	if slot.linear == nil {
		return false, nil
	}
	if _, path, ok := s.lookup(slot.key + bnbFP4StateSuffix); ok {
		return false, fmt.Errorf("model: %s: tensor %s: fp4 checkpoints are not supported, only NF4", path, slot.key+bnbFP4StateSuffix)
	}
	module := strings.TrimSuffix(slot.key, ".weight")
	stateKey := slot.key + bnbNF4StateSuffix
	state, path, ok := s.lookup(stateKey)
	if !ok {
		if q != nil && slot.key != "lm_head.weight" && !q.skips(module) {
			return false, fmt.Errorf("model: %s: tensor %s is missing: config.json's quantization_config makes %s 4-bit (it is not in llm_int8_skip_modules)",
				s.pathOf(slot.key), stateKey, module)
		}
		return false, nil
	}
	switch {
	case slot.key == "lm_head.weight":
		return false, fmt.Errorf("model: %s: tensor %s: a 4-bit output head is not supported (bitsandbytes keeps lm_head in float)", path, stateKey)
	case q == nil:
		return false, fmt.Errorf("model: %s: tensor %s marks a bitsandbytes 4-bit weight, but config.json has no quantization_config", path, stateKey)
	case q.skips(module):
		return false, fmt.Errorf("model: %s: tensor %s marks a 4-bit weight, but quantization_config's llm_int8_skip_modules keeps %s in float", path, stateKey, module)
	}
	if state.DType != safetensors.U8 {
		return false, fmt.Errorf("model: %s: tensor %s has dtype %s, want U8 (JSON bytes)", path, stateKey, state.DType)
	}
	var js struct {
		Shape []int `json:"shape"`
	}
	if err := json.Unmarshal(state.Data, &js); err != nil {
		return false, fmt.Errorf("model: %s: tensor %s: quant_state JSON: %w", path, stateKey, err)
	}
	if !slices.Equal(js.Shape, slot.shape) {
		return false, fmt.Errorf("model: %s: tensor %s gives shape %v, want %v", path, stateKey, js.Shape, slot.shape)
	}
	return true, nil
}

// pathOf returns the file that should hold key, for messages about a
// missing tensor: model.safetensors, the shard weight_map names for it, or
// the index if weight_map does not list it.
func (s *hfSource) pathOf(key string) string {
	if s.where == nil {
		return filepath.Join(s.dir, hfWeightsFile)
	}
	if name, ok := s.where[key]; ok {
		return filepath.Join(s.dir, name)
	}
	return filepath.Join(s.dir, hfIndexFile)
}

// bnbMatrix reads the 4-bit weight of slot, which check has found, and
// checks it against q.
func (s *hfSource) bnbMatrix(slot hfSlot, q *hfQuant) (*nf4.Matrix, error) {
	stateKey := slot.key + bnbNF4StateSuffix
	_, path, _ := s.lookup(stateKey)
	m, err := fromBnBTensors(strings.TrimSuffix(slot.key, ".weight"), func(name string) (safetensors.Tensor, bool) {
		t, _, ok := s.lookup(name)
		return t, ok
	})
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", path, err)
	}
	if r, c := m.Dims(); r != slot.shape[0] || c != slot.shape[1] {
		return nil, fmt.Errorf("model: %s: tensor %s gives shape [%d %d], want %v", path, stateKey, r, c, slot.shape)
	}
	if q.doubleQuant != nil && *q.doubleQuant != m.DoubleQuant() {
		return nil, fmt.Errorf("model: %s: tensor %s: double quantization is %s, but quantization_config's bnb_4bit_use_double_quant is %t",
			path, stateKey, onOff(m.DoubleQuant()), *q.doubleQuant)
	}
	return m, nil
}
