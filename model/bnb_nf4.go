package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
)

// Suffixes of the tensors bitsandbytes saves for a 4-bit weight of the layer
// named P (Linear4bit's state dict: P.weight plus QuantState.as_dict with
// packed=True, bitsandbytes/functional.py).
const (
	bnbWeight         = ".weight"
	bnbAbsmax         = ".weight.absmax"
	bnbQuantMap       = ".weight.quant_map"
	bnbNestedAbsmax   = ".weight.nested_absmax"
	bnbNestedQuantMap = ".weight.nested_quant_map"
	bnbQuantStateNF4  = ".weight.quant_state.bitsandbytes__nf4"
	bnbQuantStateFP4  = ".weight.quant_state.bitsandbytes__fp4"
)

// bnbQuantState is the JSON object bitsandbytes stores as the uint8 bytes of
// the quant_state tensor. Pointers tell a missing key from a zero value.
type bnbQuantState struct {
	QuantType       string   `json:"quant_type"`
	BlockSize       *int     `json:"blocksize"`
	DType           string   `json:"dtype"`
	Shape           []int    `json:"shape"`
	NestedBlockSize *int     `json:"nested_blocksize"`
	NestedDType     *string  `json:"nested_dtype"`
	NestedOffset    *float64 `json:"nested_offset"`
}

// bnbTensors returns the tensors bitsandbytes writes for m as the weight of
// the layer named prefix (e.g. "model.layers.0.self_attn.q_proj"):
//
//	prefix.weight                                  U8  [(n+1)/2, 1]  packed codes
//	prefix.weight.absmax                           F32 [blocks], or U8 [blocks] with double quantization
//	prefix.weight.quant_map                        F32 [16]          the NF4 codebook
//	prefix.weight.nested_absmax                    F32 [⌈blocks/256⌉] (double quantization)
//	prefix.weight.nested_quant_map                 F32 [256]         (double quantization)
//	prefix.weight.quant_state.bitsandbytes__nf4    U8  [len]         JSON: quant_type, blocksize,
//	                                               dtype, shape, nested_blocksize, nested_dtype, nested_offset
//
// The JSON is spaced as Python's json.dumps writes it. The tensors share no
// memory with m.
func bnbTensors(prefix string, m *nf4.Matrix) ([]safetensors.Tensor, error) {
	if prefix == "" {
		return nil, fmt.Errorf("model: bitsandbytes tensors: empty tensor name prefix")
	}
	p := m.Parts()
	dtype := p.DType
	if dtype == "" {
		dtype = "float32"
	}
	dq := p.QuantAbsmax != nil
	state := fmt.Sprintf(`{"quant_type": "nf4", "blocksize": %d, "dtype": %q, "shape": [%d, %d]`,
		p.BlockSize, dtype, p.Rows, p.Cols)
	if dq {
		nestedBlock := p.NestedBlockSize
		if nestedBlock == 0 {
			nestedBlock = nf4.NestedBlockSize
		}
		state += fmt.Sprintf(`, "nested_blocksize": %d, "nested_dtype": "float32", "nested_offset": %s`,
			nestedBlock, strconv.FormatFloat(float64(p.Offset), 'g', -1, 64))
	}
	state += "}"
	out := []safetensors.Tensor{
		{Name: prefix + bnbWeight, DType: safetensors.U8, Shape: []int{len(p.Packed), 1}, Data: bytes.Clone(p.Packed)},
	}
	if !dq {
		out = append(out, float32Tensor(prefix+bnbAbsmax, p.Absmax))
	} else {
		out = append(out, safetensors.Tensor{
			Name: prefix + bnbAbsmax, DType: safetensors.U8, Shape: []int{len(p.QuantAbsmax)}, Data: bytes.Clone(p.QuantAbsmax),
		})
	}
	codebook := nf4.Codebook()
	out = append(out, float32Tensor(prefix+bnbQuantMap, codebook[:]))
	if dq {
		nestedCode := p.NestedCode
		if nestedCode == nil {
			nestedCode = quant.DynamicMap(true, 7, 8)
		}
		out = append(out,
			float32Tensor(prefix+bnbNestedAbsmax, p.NestedAbsmax),
			float32Tensor(prefix+bnbNestedQuantMap, nestedCode))
	}
	out = append(out, safetensors.Tensor{
		Name: prefix + bnbQuantStateNF4, DType: safetensors.U8, Shape: []int{len(state)}, Data: []byte(state),
	})
	return out, nil
}

func float32Tensor(name string, v []float32) safetensors.Tensor {
	return safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: []int{len(v)}, Data: safetensors.Float32Bytes(v)}
}

// fromBnBTensors reads the 4-bit weight of the layer named prefix, as
// bitsandbytes saves it (see bnbTensors), from the tensors get returns, e.g.
// (*safetensors.File).Tensor. The data is copied: the matrix does not refer to
// the tensors' memory.
//
// Everything is checked against the quant_state JSON: quant_type must be
// "nf4" (an FP4 weight is reported as such), the block sizes valid, the
// packed bytes and absmax sized for the shape, and quant_map must be the NF4
// codebook exactly — bitsandbytes stores the codebook it used, and a file
// whose codebook differs is some other 4-bit format, decoded wrongly as NF4.
// The nested map of double quantization is used as stored: it depends on the
// PyTorch build that wrote it (see quant.DynamicMap).
func fromBnBTensors(prefix string, get func(name string) (safetensors.Tensor, bool)) (*nf4.Matrix, error) {
	m, err := fromBnB(prefix, get)
	if err != nil {
		return nil, fmt.Errorf("model: bitsandbytes NF4 weight %q: %w", prefix, err)
	}
	return m, nil
}

func fromBnB(prefix string, get func(name string) (safetensors.Tensor, bool)) (*nf4.Matrix, error) {
	stateTensor, ok := get(prefix + bnbQuantStateNF4)
	if !ok {
		if _, fp4 := get(prefix + bnbQuantStateFP4); fp4 {
			return nil, fmt.Errorf("%s: the weight is quantized to FP4, not NF4", prefix+bnbQuantStateFP4)
		}
		return nil, fmt.Errorf("no tensor %s", prefix+bnbQuantStateNF4)
	}
	raw, err := tensorBytes(stateTensor, safetensors.U8)
	if err != nil {
		return nil, err
	}
	var state bnbQuantState
	if err := json.Unmarshal(raw, &state); err != nil {
		return nil, fmt.Errorf("%s: quant_state JSON: %w", stateTensor.Name, err)
	}
	p, nested, err := state.parts(stateTensor.Name)
	if err != nil {
		return nil, err
	}
	n := p.Rows * p.Cols
	nb := quant.NumBlocks(n, p.BlockSize)

	weight, err := lookup(get, prefix+bnbWeight, safetensors.U8, (n+1)/2)
	if err != nil {
		return nil, err
	}
	p.Packed = bytes.Clone(weight.Data)
	quantMap, err := lookupFloat32s(get, prefix+bnbQuantMap, 16)
	if err != nil {
		return nil, err
	}
	codebook := nf4.Codebook()
	for i, v := range quantMap {
		if math.Float32bits(v) != math.Float32bits(codebook[i]) {
			return nil, fmt.Errorf("%s: value %d is %v, the NF4 codebook has %v: not an NF4 weight",
				prefix+bnbQuantMap, i, v, codebook[i])
		}
	}
	_, hasNestedAbsmax := get(prefix + bnbNestedAbsmax)
	if hasNestedAbsmax != nested {
		return nil, fmt.Errorf("%s says double quantization is %s, but %s is %s",
			stateTensor.Name, onOff(nested), prefix+bnbNestedAbsmax, presentAbsent(hasNestedAbsmax))
	}
	if !nested {
		if p.Absmax, err = lookupFloat32s(get, prefix+bnbAbsmax, nb); err != nil {
			return nil, err
		}
		return nf4.FromParts(p)
	}
	absmax, err := lookup(get, prefix+bnbAbsmax, safetensors.U8, nb)
	if err != nil {
		return nil, fmt.Errorf("%w (double quantization stores one uint8 per block)", err)
	}
	p.QuantAbsmax = bytes.Clone(absmax.Data)
	if p.NestedAbsmax, err = lookupFloat32s(get, prefix+bnbNestedAbsmax, quant.NumBlocks(nb, p.NestedBlockSize)); err != nil {
		return nil, err
	}
	if p.NestedCode, err = lookupFloat32s(get, prefix+bnbNestedQuantMap, 256); err != nil {
		return nil, err
	}
	return nf4.FromParts(p)
}

// parts checks the quant_state and returns the shape, block sizes, dtype and
// offset it gives, and whether it describes double quantization.
func (s *bnbQuantState) parts(name string) (nf4.Parts, bool, error) {
	var p nf4.Parts
	switch s.QuantType {
	case "nf4":
	case "fp4":
		return p, false, fmt.Errorf("%s: quant_type is fp4: FP4 is a different 4-bit format, not NF4", name)
	default:
		return p, false, fmt.Errorf("%s: quant_type %q: want \"nf4\"", name, s.QuantType)
	}
	if s.BlockSize == nil {
		return p, false, fmt.Errorf("%s: no blocksize", name)
	}
	if err := quant.ValidateBlockSize(*s.BlockSize); err != nil {
		return p, false, fmt.Errorf("%s: blocksize: %w", name, err)
	}
	if len(s.Shape) != 2 {
		return p, false, fmt.Errorf("%s: shape %v: want [out, in]", name, s.Shape)
	}
	if rows, cols := s.Shape[0], s.Shape[1]; rows <= 0 || cols <= 0 || rows > math.MaxInt/8/cols {
		return p, false, fmt.Errorf("%s: shape [%d, %d]: rows and cols must be positive, with a float32 copy addressable", name, rows, cols)
	}
	switch s.DType {
	case "float32", "float16", "bfloat16":
	default:
		return p, false, fmt.Errorf("%s: dtype %q: want float32, float16 or bfloat16", name, s.DType)
	}
	p = nf4.Parts{Rows: s.Shape[0], Cols: s.Shape[1], BlockSize: *s.BlockSize, DType: s.DType}
	nested := s.NestedBlockSize != nil || s.NestedDType != nil || s.NestedOffset != nil
	if !nested {
		return p, false, nil
	}
	if s.NestedBlockSize == nil || s.NestedDType == nil || s.NestedOffset == nil {
		return p, false, fmt.Errorf("%s: double quantization needs nested_blocksize, nested_dtype and nested_offset", name)
	}
	if err := quant.ValidateBlockSize(*s.NestedBlockSize); err != nil {
		return p, false, fmt.Errorf("%s: nested_blocksize: %w", name, err)
	}
	if *s.NestedDType != "float32" {
		return p, false, fmt.Errorf("%s: nested_dtype %q: want float32", name, *s.NestedDType)
	}
	offset := float32(*s.NestedOffset)
	if math.IsNaN(float64(offset)) || math.IsInf(float64(offset), 0) {
		return p, false, fmt.Errorf("%s: nested_offset %v is not a finite float32", name, *s.NestedOffset)
	}
	p.NestedBlockSize = *s.NestedBlockSize
	p.Offset = offset
	return p, true, nil
}

// tensorBytes checks t's dtype and that its data matches its shape.
func tensorBytes(t safetensors.Tensor, dtype safetensors.DType) ([]byte, error) {
	if t.DType != dtype {
		return nil, fmt.Errorf("%s: dtype %s, want %s", t.Name, t.DType, dtype)
	}
	if _, err := t.NumElements(); err != nil {
		return nil, err
	}
	return t.Data, nil
}

// lookup returns the named tensor after checking its dtype and that it holds
// exactly count elements.
func lookup(get func(string) (safetensors.Tensor, bool), name string, dtype safetensors.DType, count int) (safetensors.Tensor, error) {
	t, ok := get(name)
	if !ok {
		return t, fmt.Errorf("no tensor %s", name)
	}
	if t.DType != dtype {
		return t, fmt.Errorf("%s: dtype %s, want %s", name, t.DType, dtype)
	}
	n, err := t.NumElements()
	if err != nil {
		return t, err
	}
	if n != count {
		return t, fmt.Errorf("%s: shape %v holds %d elements, want %d", name, t.Shape, n, count)
	}
	return t, nil
}

// lookupFloat32s returns the count float32 values of the named F32 tensor.
func lookupFloat32s(get func(string) (safetensors.Tensor, bool), name string, count int) ([]float32, error) {
	t, err := lookup(get, name, safetensors.F32, count)
	if err != nil {
		return nil, err
	}
	return t.Float32s()
}

func presentAbsent(present bool) string {
	if present {
		return "present"
	}
	return "absent"
}
