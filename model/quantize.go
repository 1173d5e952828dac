package model

import (
	"context"
	"fmt"

	"github.com/golora/golora/quant"
)

// Quantize converts every block linear (see Linears) in place with q (for
// example nf4.Quantizer(nf4.Options{})): each one's Quantized is set and its
// Dense slice is dropped, so the float32 data is freed once nothing else
// refers to it. The embedding, the norms and the output head stay as they
// are (float32, or a loader's 16-bit embedding and head).
// Linears that are already quantized are left as they are. ctx is checked
// between linears, since quantizing a large model takes a while.
//
// On error the linears converted so far stay quantized and the rest dense,
// so w remains usable; the error names the linear that failed.
func (w *Weights) Quantize(ctx context.Context, q quant.Quantizer) error {
	for _, lin := range w.Linears() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("model: quantizing: %w", err)
		}
		if lin == nil {
			return fmt.Errorf("model: quantizing: weights have a missing linear layer")
		}
		if lin.Dense == nil {
			continue
		}
		if len(lin.Dense) != lin.Out*lin.In {
			return fmt.Errorf("model: quantizing %s: %d values, want %d×%d", lin.Name, len(lin.Dense), lin.Out, lin.In)
		}
		m, err := q(lin.Dense, lin.Out, lin.In)
		if err != nil {
			return fmt.Errorf("model: quantizing %s: %w", lin.Name, err)
		}
		if m == nil {
			return fmt.Errorf("model: quantizing %s: quantizer returned no matrix", lin.Name)
		}
		if r, c := m.Dims(); r != lin.Out || c != lin.In {
			return fmt.Errorf("model: quantizing %s: quantizer returned a [%d %d] matrix, want [%d %d]", lin.Name, r, c, lin.Out, lin.In)
		}
		lin.Quantized = m
		lin.Dense = nil
	}
	return nil
}

// WeightBytes splits the bytes a model's weights occupy by storage.
type WeightBytes struct {
	// Float32 counts every dense float32 value: embedding, norms, dense
	// linears and an untied output head (a tied head shares the embedding
	// and is counted once).
	Float32 int64
	// Quantized is the sum of StorageBytes of the quantized linears and of
	// a 16-bit embedding (EmbeddingMatrix) and untied head.
	Quantized int64
}

// Total returns Float32 + Quantized.
func (b WeightBytes) Total() int64 { return b.Float32 + b.Quantized }

// WeightBytes returns the bytes of weight data w keeps resident: 4 per dense
// float32 value plus the exact storage of the quantized matrices. Go object
// overhead is not counted.
func (w *Weights) WeightBytes() WeightBytes {
	var b WeightBytes
	addLinear := func(lin *Linear) {
		if lin == nil {
			return
		}
		b.Float32 += 4 * int64(len(lin.Dense))
		if lin.Quantized != nil {
			b.Quantized += lin.Quantized.StorageBytes()
		}
	}
	b.Float32 += 4 * int64(len(w.Embedding)+len(w.Norm))
	if w.EmbeddingMatrix != nil {
		b.Quantized += w.EmbeddingMatrix.StorageBytes()
	}
	for l := range w.Layers {
		b.Float32 += 4 * int64(len(w.Layers[l].AttnNorm)+len(w.Layers[l].MLPNorm))
	}
	for _, lin := range w.Linears() {
		addLinear(lin)
	}
	if !w.Config.TiedOutput {
		addLinear(w.Output)
	}
	return b
}
