package model

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/internal/half"
	"github.com/golora/golora/internal/hugemem"
	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/quant"
	"github.com/golora/golora/quant/ggml"
)

// A frozen base's embedding and untied output head stored in BF16 or F16
// (Hugging Face safetensors or GGUF) stay in that type when a quantizer is
// set (QLoRA: the base is frozen, so
// nothing will write them): read as they are, with no conversion, into
// quant.Half matrices of half the float32 size.

// littleEndian reports whether this machine stores a uint16 as a file's
// little-endian bytes, so that the file's bytes can be copied as they are.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// keep16 reports whether the loader keeps slot's tensor t in its 16-bit
// type: the embedding or the output head, stored in BF16 or F16 (keeps16).
func keep16(so streamOptions, slot hfSlot, t safetensors.Tensor) bool {
	if slot.key != hfEmbeddingKey && slot.key != "lm_head.weight" {
		return false
	}
	n, err := t.NumElements()
	return err == nil && so.keeps16(t.DType == safetensors.BF16 || t.DType == safetensors.F16, n%2 == 0)
}

// keepGGUF16 is keep16 for a GGUF tensor t (the embedding or output head).
func keepGGUF16(so streamOptions, t gguf.TensorInfo) bool {
	return so.keeps16(t.Type == gguf.TypeBF16 || t.Type == gguf.TypeF16, t.NumElements()%2 == 0)
}

// keepGGUFBlocks reports whether the loader keeps GGUF tensor t, the
// embedding or output head, in its ggml block format (Q8_0, Q4_K, …) as a
// ggml.Matrix: loaded to run as stored, without a quantizer and without
// float32Embedding. A decode step's head product then reads the blocks,
// a quarter to an eighth of the float32 head's bytes, as llama.cpp does.
//
// With a quantizer (QLoRA training) they stay float32 as before: the
// training graph's head would run on the blocks (it takes any
// quant.Matrix, as it does a 16-bit head), but it multiplies every token
// of a step forward and backward, where dequantizing the blocks each time
// may cost more than reading float32; that trade is not measured yet.
func keepGGUFBlocks(so streamOptions, t gguf.TensorInfo) bool {
	return ggml.Type(t.Type).Supported() && so.quantizer == nil && !so.float32Embedding
}

// keeps16 reports whether a matrix stored in 16 bits (is16) stays so: with
// an even number of values (even; two a float32-sized word), loaded with a
// quantizer and without float32Embedding, on a little-endian machine (the
// file's bytes are copied as they are).
func (so streamOptions) keeps16(is16, even bool) bool {
	return is16 && even && so.quantizer != nil && !so.float32Embedding && littleEndian
}

// ggufHalf reads the 16-bit GGUF tensor t, [rows, cols], whose bytes raw
// are read through file, as a quant.Half, reporting whether its values are
// all finite. It keeps the values in dest (rows·cols/2 float32-sized words,
// allocated ahead: prefault.go) if it is not nil, else in new memory.
func ggufHalf(t gguf.TensorInfo, raw []byte, file tensorFile, rows, cols int, dest []float32) (*quant.Half, bool, error) {
	if n := rows * cols; len(raw) != 2*n {
		return nil, false, fmt.Errorf("gguf: tensor %s: %d bytes of %v data for %d elements", t.Name, len(raw), t.Type, n)
	}
	m, finite, err := decodeHalf(dest, raw, t.Type == gguf.TypeF16, file, rows, cols)
	if err != nil {
		return nil, false, fmt.Errorf("gguf: tensor %s: %w", t.Name, err)
	}
	return m, finite, nil
}

// decodeHalf copies the rows×cols 16-bit values of src (F16 when f16, else
// BF16), read from file, into dest (or new memory when dest is nil; two
// values a float32-sized word) and returns them as a quant.Half, reporting
// whether they are all finite.
func decodeHalf(dest []float32, src []byte, f16 bool, file tensorFile, rows, cols int) (*quant.Half, bool, error) {
	n := rows * cols
	if dest == nil {
		dest = hugemem.Make[float32](n / 2)
	}
	finite, err := decodeStreaming(dest[:n/2], src, copy16(f16), file)
	if err != nil {
		return nil, false, err
	}
	values := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(dest))), n)
	newHalf := quant.NewBF16
	if f16 {
		newHalf = quant.NewF16
	}
	m, err := newHalf(values, rows, cols)
	return m, finite, err
}

// copy16 is a floatDecoder that copies 16-bit values as they are into the
// float32-sized words of dst (two values a word), checking that they are
// finite.
func copy16(f16 bool) floatDecoder {
	bytes := func(dst []float32) []byte {
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 4*len(dst))
	}
	return floatDecoder{
		size:   4,
		decode: func(dst []float32, src []byte) { copy(bytes(dst), src) },
		decodeFinite: func(dst []float32, src []byte) bool {
			copy(bytes(dst), src)
			v := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(dst))), 2*len(dst))
			if f16 {
				return half.FiniteF16(v)
			}
			return half.FiniteBF16(v)
		},
	}
}

// read16 reads slot's 16-bit tensor t (keep16) into dest, or new memory when
// dest is nil, and stores it in w as a quant.Half: the embedding matrix or
// the output head's.
func (s *hfSource) read16(w *Weights, slot hfSlot, t safetensors.Tensor, path string, dest []float32, file tensorFile) error {
	m, finite, err := decodeHalf(dest, t.Data, t.DType == safetensors.F16, file, slot.shape[0], slot.shape[1])
	if err != nil {
		return fmt.Errorf("model: %s: tensor %s: %w", path, t.Name, err)
	}
	if slot.key == hfEmbeddingKey {
		w.EmbeddingMatrix, w.embeddingFinite = m, finite
		return nil
	}
	w.Output.Quantized, w.Output.finite = m, finite
	return nil
}
