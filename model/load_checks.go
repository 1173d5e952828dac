package model

import (
	"fmt"

	"github.com/golora/golora/quant"
	"slices"
	"strings"
)

// CheckFinite returns an error naming the first tensor of w that holds a
// NaN or an infinity (and the element), so that a damaged checkpoint is
// refused at load instead of producing NaN losses or logits later.
// Quantized linears are checked through their dequantized rows.
func (w *Weights) CheckFinite() error {
	vector := func(name string, v []float32) error {
		if i := firstNonFiniteParallel(v); i >= 0 {
			return fmt.Errorf("tensor %s element %d is %v: the weights hold non-finite values", name, i, v[i])
		}
		return nil
	}
	if err := vector("model.embed_tokens.weight", w.Embedding); err != nil {
		return err
	}
	if m := w.EmbeddingMatrix; m != nil && !w.embeddingFinite {
		emb := &Linear{Name: "model.embed_tokens", Quantized: m}
		if err := checkLinearFinite(emb, vector); err != nil {
			return err
		}
	}
	if err := vector("model.norm.weight", w.Norm); err != nil {
		return err
	}
	for l, layer := range w.Layers {
		prefix := fmt.Sprintf("model.layers.%d.", l)
		if err := vector(prefix+"input_layernorm.weight", layer.AttnNorm); err != nil {
			return err
		}
		if err := vector(prefix+"post_attention_layernorm.weight", layer.MLPNorm); err != nil {
			return err
		}
	}
	for _, lin := range append(w.Linears(), w.Output) {
		if lin == nil || lin == w.Output && w.headIsEmbedding() {
			continue // a tied head is the embedding, checked above
		}
		if err := checkLinearFinite(lin, vector); err != nil {
			return err
		}
	}
	return nil
}

// checkLinearFinite checks a linear's dense values or, a row block at a
// time, its dequantized ones.
func checkLinearFinite(lin *Linear, vector func(string, []float32) error) error {
	name := lin.Name + ".weight"
	if lin.Quantized == nil {
		return vector(name, lin.Dense)
	}
	if lin.finite {
		return nil
	}
	if h, ok := lin.Quantized.(*quant.Half); ok {
		// The 16-bit values are checked as they are: half the bytes of
		// their widened rows.
		if i := h.FirstNonFinite(); i >= 0 {
			_, cols := h.Dims()
			return fmt.Errorf("tensor %s element %d (row %d) is not finite: the weights hold non-finite values", name, i, i/cols)
		}
		return nil
	}
	rows, cols := lin.Quantized.Dims()
	const block = 64
	buf := make([]float32, block*cols)
	for start := 0; start < rows; start += block {
		end := min(start+block, rows)
		if err := lin.Quantized.DequantizeRows(buf, start, end); err != nil {
			return fmt.Errorf("tensor %s: %w", name, err)
		}
		if err := vector(name, buf[:(end-start)*cols]); err != nil {
			return fmt.Errorf("%w (rows %d to %d, dequantized)", err, start, end)
		}
	}
	return nil
}

// unusedTensors returns the tensors of s that no slot of cfg reads: the
// layers a config.json that names too few layers leaves out, or tensors of
// another architecture. Rotary frequency tables, which older checkpoints
// store and which are recomputed, and a stored lm_head of a tied model
// (ignored as transformers ignores it) do not count.
func (s *hfSource) unusedTensors(cfg Config) []string {
	used := make(map[string]bool)
	for slot := range hfSlots(cfg) {
		used[slot.key] = true
	}
	var unused []string
	for _, f := range s.files {
		for _, name := range f.Names() {
			key := name
			// bitsandbytes keeps a quantized weight's statistics under
			// its key plus a suffix.
			if i := strings.Index(name, ".weight."); i >= 0 {
				key = name[:i+len(".weight")]
			}
			switch {
			case used[key], strings.HasSuffix(name, "rotary_emb.inv_freq"),
				cfg.TiedOutput && name == "lm_head.weight":
				continue
			}
			unused = append(unused, name)
		}
	}
	slices.Sort(unused)
	return unused
}

// checkUnused refuses a checkpoint with tensors cfg does not use, naming
// them (at most ten).
func (s *hfSource) checkUnused(cfg Config) error {
	unused := s.unusedTensors(cfg)
	if len(unused) == 0 {
		return nil
	}
	shown := unused[:min(len(unused), 10)]
	more := ""
	if len(unused) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(unused)-len(shown))
	}
	return fmt.Errorf("model: %s: %d tensors are not used by the model config.json describes (%d layers): %s%s", s.dir, len(unused), cfg.Layers, strings.Join(shown, ", "), more)
}
