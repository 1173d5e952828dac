package serve

import (
	"fmt"

	"github.com/golora/golora/internal/hugemem"
	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
)

// MoveOffHeap copies the large arrays of the base model w into memory
// outside the Go heap and points w at the copies: the embedding (and the
// tied head with it), dense linear weights, the values of a 16-bit
// (quant.Half) embedding or head and the codes and scales of NF4 linears.
// Other quantized formats stay where they are.
//
// The garbage collector lets the heap grow by GOGC percent of what is live
// before it collects (100% by default), and a server's base model is most of
// what is live: with the base in the heap, a server whose requests and
// adapter loads make garbage grows to twice the base before collecting it.
// Outside the heap, the headroom scales with the server's own small live
// data instead.
//
// The memory is never returned: call MoveOffHeap once, before anything runs
// on w, for a base that serves until the process ends. It returns the bytes
// moved.
func MoveOffHeap(w *model.Weights) (int64, error) {
	if w == nil {
		return 0, fmt.Errorf("serve: MoveOffHeap: weights are nil")
	}
	tied := w.Output != nil && len(w.Output.Dense) > 0 && len(w.Embedding) > 0 && &w.Output.Dense[0] == &w.Embedding[0]
	tiedHalf := w.Output != nil && w.EmbeddingMatrix != nil && w.Output.Quantized == w.EmbeddingMatrix
	lins := w.Linears()
	if w.Output != nil && !tied && !tiedHalf {
		lins = append(lins, w.Output)
	}
	size := hugemem.Footprint[float32](len(w.Embedding))
	// A 16-bit embedding or head (quant.Half) moves as its values.
	embHalf, _ := w.EmbeddingMatrix.(*quant.Half)
	if embHalf != nil {
		size += hugemem.Footprint[uint16](len(embHalf.Values()))
	}
	for _, lin := range lins {
		if h, ok := lin.Quantized.(*quant.Half); ok {
			size += hugemem.Footprint[uint16](len(h.Values()))
		}
		size += hugemem.Footprint[float32](len(lin.Dense))
		if m, ok := lin.Quantized.(*nf4.Matrix); ok {
			p := m.Parts()
			size += hugemem.Footprint[byte](len(p.Packed)) + hugemem.Footprint[float32](len(p.Absmax)) +
				hugemem.Footprint[uint8](len(p.QuantAbsmax)) + hugemem.Footprint[float32](len(p.NestedAbsmax)) +
				hugemem.Footprint[float32](len(p.NestedCode))
		}
	}
	mem, err := hugemem.NewHugeArena(size)
	if err != nil {
		return 0, fmt.Errorf("serve: MoveOffHeap: %w", err)
	}
	// Build every replacement before changing w, so that an error leaves
	// it as it was.
	matrices := make([]*nf4.Matrix, len(lins))
	halves := make([]*quant.Half, len(lins))
	for i, lin := range lins {
		if h, ok := lin.Quantized.(*quant.Half); ok {
			if halves[i], err = copyHalf(mem, h); err != nil {
				mem.Free()
				return 0, fmt.Errorf("serve: MoveOffHeap: %s: %w", lin.Name, err)
			}
		}
	}
	var emb *quant.Half
	if embHalf != nil {
		if emb, err = copyHalf(mem, embHalf); err != nil {
			mem.Free()
			return 0, fmt.Errorf("serve: MoveOffHeap: model.embed_tokens: %w", err)
		}
	}
	for i, lin := range lins {
		m, ok := lin.Quantized.(*nf4.Matrix)
		if !ok {
			continue
		}
		p := m.Parts()
		p.Packed = hugemem.Copy(mem, p.Packed)
		p.Absmax = copyOrNil(mem, p.Absmax)
		p.QuantAbsmax = copyOrNil(mem, p.QuantAbsmax)
		p.NestedAbsmax = copyOrNil(mem, p.NestedAbsmax)
		p.NestedCode = copyOrNil(mem, p.NestedCode)
		if matrices[i], err = nf4.FromParts(p); err != nil {
			mem.Free()
			return 0, fmt.Errorf("serve: MoveOffHeap: %s: %w", lin.Name, err)
		}
	}
	for i, lin := range lins {
		if matrices[i] != nil {
			lin.Quantized = matrices[i]
		}
		if halves[i] != nil {
			lin.Quantized = halves[i]
		}
		lin.Dense = copyOrNil(mem, lin.Dense)
	}
	w.Embedding = copyOrNil(mem, w.Embedding)
	if tied {
		w.Output.Dense = w.Embedding
	}
	if emb != nil {
		w.EmbeddingMatrix = emb
		if tiedHalf {
			w.Output.Quantized = emb
		}
	}
	return int64(size), nil
}

// copyHalf returns h with its values copied into mem.
func copyHalf(mem *hugemem.Arena, h *quant.Half) (*quant.Half, error) {
	rows, cols := h.Dims()
	v := hugemem.Copy(mem, h.Values())
	if h.IsF16() {
		return quant.NewF16(v, rows, cols)
	}
	return quant.NewBF16(v, rows, cols)
}

// copyOrNil copies v into mem, keeping nil as nil (it means "absent").
func copyOrNil[T hugemem.Elem](mem *hugemem.Arena, v []T) []T {
	if v == nil {
		return nil
	}
	return hugemem.Copy(mem, v)
}
