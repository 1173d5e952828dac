package lora

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"slices"

	"github.com/golora/golora/model"
)

// mergeRecord is what Unmerge needs to undo a Merge exactly.
type mergeRecord struct {
	base     *model.Weights
	original map[string][]float32 // module → its dense weight before Merge
	merged   map[string]uint64    // module → hash of its weight right after Merge
	seed     maphash.Seed
}

// Merge folds a into the dense weights of base in place: W ← W + scaling·B·A
// for every pair, with B·A and the sum computed in float64 and rounded once
// to float32. It keeps a copy of each weight it changes (as much memory as
// those weights) until Unmerge restores them. Merge refuses, changing
// nothing, an adapter that does not fit base, a targeted weight that is
// quantized (use MergedDense), and an adapter that is already merged.
//
// After Merge the adapter must not also be applied with AddDelta (a Set
// skips a merged adapter).
func Merge(base *model.Weights, a *Adapter) error {
	if a == nil {
		return errors.New("lora: Merge: nil adapter")
	}
	if a.merged != nil {
		return errors.New("lora: Merge: adapter is already merged into a base model; Unmerge it first")
	}
	if err := a.Check(base); err != nil {
		return err
	}
	lins, err := a.linearsOf(base)
	if err != nil {
		return err
	}
	for _, lin := range lins {
		if lin.Dense == nil || len(lin.Dense) != lin.Out*lin.In {
			return fmt.Errorf("lora: Merge: module %q is not a dense float32 weight of %d values (quantized bases need MergedDense)", lin.Name, lin.Out*lin.In)
		}
	}
	rec := &mergeRecord{
		base:     base,
		original: make(map[string][]float32, len(lins)),
		merged:   make(map[string]uint64, len(lins)),
		seed:     maphash.MakeSeed(),
	}
	for _, lin := range lins {
		rec.original[lin.Name] = slices.Clone(lin.Dense)
		a.pairs[lin.Name].addDeltaTo(lin.Dense)
		rec.merged[lin.Name] = hashFloats(rec.seed, lin.Dense)
	}
	a.merged = rec
	return nil
}

// Unmerge undoes Merge: every weight Merge changed gets back its exact
// original bits. It fails, changing nothing, if a is not merged into base or
// if a merged weight was modified since Merge (for instance by merging another
// adapter afterwards: unmerge adapters in the reverse order of merging).
func Unmerge(base *model.Weights, a *Adapter) error {
	if a == nil {
		return errors.New("lora: Unmerge: nil adapter")
	}
	rec := a.merged
	if rec == nil || rec.base != base {
		return errors.New("lora: Unmerge: adapter is not merged into this base model")
	}
	lins, err := a.linearsOf(base)
	if err != nil {
		return err
	}
	for _, lin := range lins {
		if len(lin.Dense) != len(rec.original[lin.Name]) || hashFloats(rec.seed, lin.Dense) != rec.merged[lin.Name] {
			return fmt.Errorf("lora: Unmerge: module %q changed after Merge; cannot restore it exactly", lin.Name)
		}
	}
	for _, lin := range lins {
		copy(lin.Dense, rec.original[lin.Name])
	}
	a.merged = nil
	return nil
}

// Merged reports whether a is merged into base.
func (a *Adapter) Merged(base *model.Weights) bool {
	return a.merged != nil && a.merged.base == base
}

// MergedDense returns a new, independent dense copy of base with a folded in:
// quantized weights are dequantized (DequantizeRows) and every weight gets
// scaling·B·A added as Merge does. base is not modified. This is how a QLoRA
// result becomes a plain checkpoint (e.g. for model.WriteHF); it needs the
// memory of the whole dense model.
func MergedDense(base *model.Weights, a *Adapter) (*model.Weights, error) {
	if a == nil {
		return nil, errors.New("lora: MergedDense: nil adapter")
	}
	if err := a.Check(base); err != nil {
		return nil, err
	}
	if a.merged != nil && a.merged.base == base {
		return nil, errors.New("lora: MergedDense: adapter is already merged into this base model")
	}
	emb, err := base.EmbeddingFloat32()
	if err != nil {
		return nil, fmt.Errorf("lora: MergedDense: %w", err)
	}
	if base.EmbeddingMatrix == nil {
		emb = slices.Clone(emb)
	}
	out := &model.Weights{
		Config:    base.Config,
		Embedding: emb,
		Norm:      slices.Clone(base.Norm),
		// The rotary frequencies belong to the frozen base.
		RopeFreqFactors: slices.Clone(base.RopeFreqFactors),
		Layers:          make([]model.Layer, len(base.Layers)),
	}
	dense := func(lin *model.Linear) (*model.Linear, error) {
		if lin == nil {
			return nil, nil
		}
		d, err := denseCopy(lin)
		if err != nil {
			return nil, err
		}
		if p, ok := a.pairs[lin.Name]; ok {
			p.addDeltaTo(d.Dense)
		}
		return d, nil
	}
	for i := range base.Layers {
		src, dst := &base.Layers[i], &out.Layers[i]
		dst.AttnNorm = slices.Clone(src.AttnNorm)
		dst.MLPNorm = slices.Clone(src.MLPNorm)
		dst.QNorm = slices.Clone(src.QNorm)
		dst.KNorm = slices.Clone(src.KNorm)
		dsts := dst.Linears()
		for j, nl := range src.Linears() {
			if *dsts[j].Linear, err = dense(*nl.Linear); err != nil {
				return nil, err
			}
		}
	}
	if base.Output != nil {
		if base.Config.TiedOutput {
			// Keep the tie: the head shares the copied embedding (Check has
			// refused adapters on a tied head).
			if len(out.Embedding) != base.Output.Out*base.Output.In {
				return nil, fmt.Errorf("lora: tied output head %q is [%d %d] but the embedding has %d values",
					base.Output.Name, base.Output.Out, base.Output.In, len(out.Embedding))
			}
			out.Output = &model.Linear{Name: base.Output.Name, Out: base.Output.Out, In: base.Output.In, Dense: out.Embedding}
		} else if out.Output, err = dense(base.Output); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// denseCopy returns lin as a fresh dense float32 Linear.
func denseCopy(lin *model.Linear) (*model.Linear, error) {
	n := lin.Out * lin.In
	d := &model.Linear{Name: lin.Name, Out: lin.Out, In: lin.In, Dense: make([]float32, n), Bias: slices.Clone(lin.Bias)}
	switch {
	case lin.Quantized != nil:
		rows, cols := lin.Quantized.Dims()
		if rows != lin.Out || cols != lin.In {
			return nil, fmt.Errorf("lora: module %q: quantized weight is [%d %d], Linear says [%d %d]", lin.Name, rows, cols, lin.Out, lin.In)
		}
		if err := lin.Quantized.DequantizeRows(d.Dense, 0, lin.Out); err != nil {
			return nil, fmt.Errorf("lora: module %q: dequantizing: %w", lin.Name, err)
		}
	case len(lin.Dense) == n:
		copy(d.Dense, lin.Dense)
	default:
		return nil, fmt.Errorf("lora: module %q: has %d dense values and no quantized weight, want [%d %d]", lin.Name, len(lin.Dense), lin.Out, lin.In)
	}
	return d, nil
}

// linearsOf returns the base layers of a's pairs, in a's module order.
func (a *Adapter) linearsOf(base *model.Weights) ([]*model.Linear, error) {
	all, err := baseLinears(base)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]*model.Linear, len(all))
	for _, bl := range all {
		byName[bl.lin.Name] = bl.lin
	}
	out := make([]*model.Linear, 0, len(a.modules))
	for _, name := range a.modules {
		lin, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("lora: module %q of the adapter is not a linear layer of the base model", name)
		}
		out = append(out, lin)
	}
	return out, nil
}

// addDeltaTo adds Scaling·B·A to the row-major [Out, In] weight w. Each row
// of B·A is accumulated in float64 and added to w with a single rounding.
func (p *Pair) addDeltaTo(w []float32) {
	row := make([]float64, p.In)
	for o := range p.Out {
		clear(row)
		for k := range p.R {
			b := float64(p.B[o*p.R+k])
			if b == 0 {
				continue
			}
			for i, v := range p.A[k*p.In : (k+1)*p.In] {
				row[i] += b * float64(v)
			}
		}
		wr := w[o*p.In : (o+1)*p.In]
		for i, d := range row {
			wr[i] = float32(float64(wr[i]) + p.scaling*d)
		}
	}
}

// hashFloats hashes the bits of v.
func hashFloats(seed maphash.Seed, v []float32) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	var buf [4096]byte
	for len(v) > 0 {
		n := min(len(v), len(buf)/4)
		for i, f := range v[:n] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(f))
		}
		h.Write(buf[:4*n])
		v = v[n:]
	}
	return h.Sum64()
}
