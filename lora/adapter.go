package lora

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/golora/golora/model"
	"github.com/golora/golora/model/infer"
)

// Pair is the low-rank update of one linear layer W [Out, In]:
// ΔW = Scaling() · B·A. A and B are the trainable tensors, row-major, laid
// out exactly as PEFT's lora_A.weight and lora_B.weight.
type Pair struct {
	Module  string    // Hugging Face module name, e.g. "model.layers.0.self_attn.q_proj"
	In, Out int       // shape of the adapted weight
	R       int       // rank
	A       []float32 // [R, In]
	B       []float32 // [Out, R]

	alpha   float64
	scaling float64
}

// Alpha returns the pair's lora_alpha (after AlphaPattern).
func (p *Pair) Alpha() float64 { return p.alpha }

// Scaling returns the factor of B·A: Alpha/R, or Alpha/√R with rsLoRA.
func (p *Pair) Scaling() float64 { return p.scaling }

// Adapter is one LoRA adapter: its configuration and a Pair per targeted
// linear layer. An Adapter is not safe for concurrent modification (training
// steps, Merge, Unmerge); concurrent AddDelta calls are safe.
type Adapter struct {
	// Config is the adapter's configuration. New stores it with
	// TargetModules resolved to a list (AllLinear expanded, null replaced by
	// the default), as PEFT saves it. The pairs are fixed when the adapter is
	// created: changing Config afterwards does not change their rank or
	// scaling (and Save refuses a rank that no longer agrees).
	Config Config

	pairs   map[string]*Pair
	modules []string     // pair names, sorted by naturalCompare
	merged  *mergeRecord // non-nil while merged into a base
	// split names the pairs LoadFor made from a PEFT pair of a fused module
	// (Phi-3's qkv_proj, gate_up_proj); nil for other adapters.
	split map[string]bool
}

// New creates an adapter for base: a pair for every linear layer cfg targets,
// initialized as cfg.InitLoRAWeights says from a generator seeded with seed
// and the module name, so the same seed gives the same adapter and each
// module's values do not depend on which other modules are targeted. It is an
// error if cfg is invalid or targets nothing, if cfg targets a tied output
// head, or if the initialization method is one New does not implement.
func New(base *model.Weights, cfg Config, seed uint64) (*Adapter, error) {
	m, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	init := cfg.InitLoRAWeights
	switch init {
	case "", InitKaiming, InitGaussian, InitLinearDefault:
	default:
		return nil, fmt.Errorf("lora: init_lora_weights %q is not supported for new adapters (use kaiming, gaussian or linear-default)", string(init))
	}
	lins, err := m.selectLinears(base)
	if err != nil {
		return nil, err
	}
	a := &Adapter{Config: cloneConfig(cfg), pairs: make(map[string]*Pair, len(lins))}
	a.Config.TargetModules = resolvedTargets(m, base)
	if a.Config.Bias == "" {
		a.Config.Bias = "none"
	}
	if a.Config.InitLoRAWeights == "" {
		a.Config.InitLoRAWeights = InitKaiming
	}
	if err := checkRanks(m, lins); err != nil {
		return nil, err
	}
	for _, lin := range lins {
		if err := checkLinearUsable(base, lin); err != nil {
			return nil, err
		}
		r, alpha := m.rankAlpha(lin.Name)
		p := &Pair{
			Module: lin.Name, In: lin.In, Out: lin.Out, R: r,
			A:     make([]float32, r*lin.In),
			B:     make([]float32, lin.Out*r),
			alpha: alpha, scaling: scaling(r, alpha, cfg.UseRSLoRA),
		}
		initPair(p, a.Config.InitLoRAWeights, seed)
		a.pairs[p.Module] = p
		a.modules = append(a.modules, p.Module)
	}
	slices.SortFunc(a.modules, naturalCompare)
	return a, nil
}

// resolvedTargets is TargetModules as PEFT saves it after creating the
// adapter: all-linear expanded to the leaf names, null to the default list.
func resolvedTargets(m *matcher, base *model.Weights) Modules {
	switch {
	case m.allLinear:
		return ModuleNames(blockLeafNames(base)...)
	case m.targetRe != nil:
		return ModuleRegex(m.cfg.TargetModules.Regex)
	}
	return ModuleNames(m.targets...)
}

// maxAdapterParams bounds the parameters of one adapter (16 GB of float32
// values, before gradients and optimizer moments), so that absurd settings
// fail before they allocate.
const maxAdapterParams = 4 << 30

// checkRanks refuses, before anything is allocated, a rank above
// min(in, out) of a targeted layer (a pair of that rank can represent no
// more than the full update, at more cost) and an adapter over
// maxAdapterParams.
func checkRanks(m *matcher, lins []*model.Linear) error {
	total := 0
	for _, lin := range lins {
		r, _ := m.rankAlpha(lin.Name)
		if limit := min(lin.In, lin.Out); r > limit {
			return fmt.Errorf("lora: rank %d is larger than module %q allows: its weight is [%d %d], so the rank can be at most %d", r, lin.Name, lin.Out, lin.In, limit)
		}
		total += r * (lin.In + lin.Out)
		if total > maxAdapterParams {
			return fmt.Errorf("lora: the adapter would have over %d parameters (rank %d on %q and the layers before it)", maxAdapterParams, r, lin.Name)
		}
	}
	return nil
}

// checkLinearUsable refuses layers an adapter cannot be attached to.
func checkLinearUsable(base *model.Weights, lin *model.Linear) error {
	if lin.Out <= 0 || lin.In <= 0 {
		return fmt.Errorf("lora: module %q: base weight has shape [%d %d]", lin.Name, lin.Out, lin.In)
	}
	if lin == base.Output && base.Config.TiedOutput {
		return fmt.Errorf("lora: module %q: the output head is tied to the embedding; an adapter on it is not supported", lin.Name)
	}
	return fusedModuleError(base, lin.Name)
}

// fusedModuleError refuses adapters on the parts of a fused projection.
// Phi-3 checkpoints stack q, k and v in one qkv_proj and gate and up in one
// gate_up_proj; golora splits them at load, but a PEFT adapter on a fused
// module has one A for all parts (B stacked by rows), which golora's
// per-linear pairs do not represent, and pairs on the split parts would have
// names PEFT cannot load. So on such a base only o_proj and down_proj (and
// an untied lm_head) take adapters, under PEFT's own names.
func fusedModuleError(base *model.Weights, module string) error {
	if base.Config.Arch != "phi3" {
		return nil
	}
	for _, part := range []struct{ suffix, fused string }{
		{".self_attn.q_proj", "self_attn.qkv_proj"}, {".self_attn.k_proj", "self_attn.qkv_proj"},
		{".self_attn.v_proj", "self_attn.qkv_proj"}, {".self_attn.qkv_proj", "self_attn.qkv_proj"},
		{".mlp.gate_proj", "mlp.gate_up_proj"}, {".mlp.up_proj", "mlp.gate_up_proj"}, {".mlp.gate_up_proj", "mlp.gate_up_proj"},
	} {
		if strings.HasSuffix(module, part.suffix) {
			return fmt.Errorf("lora: module %q: this phi3 model fuses it into %s, and adapters on fused modules are not supported; target o_proj and down_proj",
				module, part.fused)
		}
	}
	return nil
}

// initPair fills A and B. Each module gets its own generator, seeded with
// seed and a hash of the module name.
func initPair(p *Pair, init Init, seed uint64) {
	h := fnv.New64a()
	h.Write([]byte(p.Module))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	uniform := func(dst []float32, bound float64) {
		for i := range dst {
			dst[i] = float32((2*rng.Float64() - 1) * bound)
		}
	}
	switch init {
	case InitGaussian:
		std := 1 / float64(p.R)
		for i := range p.A {
			p.A[i] = float32(rng.NormFloat64() * std)
		}
		clear(p.B)
	case InitLinearDefault:
		// PyTorch's nn.Linear default: kaiming_uniform(a=√5) over the
		// weight's fan-in, i.e. bound 1/√fan_in.
		uniform(p.A, 1/math.Sqrt(float64(p.In)))
		uniform(p.B, 1/math.Sqrt(float64(p.R)))
	default:
		// kaiming_uniform(a=√5): gain √(2/(1+5)), bound gain·√3/√fan_in = 1/√in.
		uniform(p.A, 1/math.Sqrt(float64(p.In)))
		clear(p.B)
	}
}

// Pair returns the pair of the named module, or false if the adapter does
// not target it. The pair is the adapter's own: training updates its A and B
// in place.
func (a *Adapter) Pair(module string) (*Pair, bool) {
	p, ok := a.pairs[module]
	return p, ok
}

// Trainable returns nil if a can be trained, or the reason it cannot: it is
// merged into a base (its term would count twice), or LoadFor split the
// pairs of fused modules (qkv_proj, gate_up_proj), whose parts would no
// longer share A.
func (a *Adapter) Trainable() error {
	if a.merged != nil {
		return errors.New("lora: the adapter is merged into a base model; Unmerge it before training")
	}
	if len(a.split) > 0 {
		return errors.New("lora: the adapter's pairs of fused modules (qkv_proj, gate_up_proj) were split at load and cannot be trained: their parts would no longer share A")
	}
	return nil
}

// Modules returns the names of the adapted modules, sorted by name with
// embedded numbers compared by value (layer 2 before layer 10).
func (a *Adapter) Modules() []string { return slices.Clone(a.modules) }

// NumParams returns the number of trainable parameters, Σ R·(In+Out).
func (a *Adapter) NumParams() int64 {
	var n int64
	for _, p := range a.pairs {
		n += int64(p.R) * int64(p.In+p.Out)
	}
	return n
}

// Check reports whether a fits base: every pair's module must exist in base
// with the pair's shape, and every module of base that a's config targets must
// have a pair. Errors name the module and both shapes.
func (a *Adapter) Check(base *model.Weights) error { return a.check(base, true) }

// check is Check; with values false the pairs' A and B are not looked at
// (a Reader's pairs have shapes and no values yet).
func (a *Adapter) check(base *model.Weights, values bool) error {
	all, err := baseLinears(base)
	if err != nil {
		return err
	}
	byName := make(map[string]*model.Linear, len(all))
	for _, bl := range all {
		byName[bl.lin.Name] = bl.lin
	}
	for _, name := range a.modules {
		p := a.pairs[name]
		lin, ok := byName[name]
		if !ok {
			if err := fusedModuleError(base, name); err != nil {
				return err
			}
			return fmt.Errorf("lora: module %q of the adapter is not a linear layer of the base model", name)
		}
		if !a.split[name] {
			if err := checkLinearUsable(base, lin); err != nil {
				return err
			}
		}
		if lin.Out != p.Out || lin.In != p.In {
			return fmt.Errorf("lora: module %q: adapter A %v and B %v need a base weight of shape [%d %d], base has [%d %d]",
				name, []int{p.R, p.In}, []int{p.Out, p.R}, p.Out, p.In, lin.Out, lin.In)
		}
		if values && (len(p.A) != p.R*p.In || len(p.B) != p.Out*p.R) {
			return fmt.Errorf("lora: module %q: A has %d values and B %d, want %d and %d for rank %d",
				name, len(p.A), len(p.B), p.R*p.In, p.Out*p.R, p.R)
		}
	}
	m, err := a.Config.compile()
	if err != nil {
		return err
	}
	leaves := blockLeafNames(base)
	for _, bl := range all {
		if _, ok := a.pairs[bl.lin.Name]; ok || (m.allLinear && bl.head) {
			continue
		}
		if m.targetsModule(bl.lin.Name, leaves) {
			return fmt.Errorf("lora: the adapter config targets module %q of the base model but the adapter has no pair for it (missing %s)",
				bl.lin.Name, TensorKey(bl.lin.Name, "lora_A"))
		}
	}
	return nil
}

// AddDelta adds the adapter's term scaling·(x·Aᵀ)·Bᵀ to y for n rows: x is
// [n, lin.In] and y is [n, lin.Out], row-major. It does nothing for a module
// the adapter does not target. Sums are accumulated in float32, the precision
// of the frozen forward pass; dropout is not applied (inference). AddDelta
// implements infer.Adapter, the generator's hook. A layer whose shape
// disagrees with the adapter's pair (an adapter not checked against this
// base with Check, LoadFor or Set.Add), or x or y shorter than n rows,
// is an error naming the module; y is then unchanged.
func (a *Adapter) AddDelta(lin *model.Linear, y, x []float32, n int) error {
	p, ok := a.pairs[lin.Name]
	if !ok {
		return nil
	}
	if lin.In != p.In || lin.Out != p.Out {
		return fmt.Errorf("lora: module %q: base weight [%d %d] does not match the adapter's [%d %d]",
			lin.Name, lin.Out, lin.In, p.Out, p.In)
	}
	if n < 0 || len(x) < n*p.In || len(y) < n*p.Out {
		return fmt.Errorf("lora: module %q: %d rows need x of %d and y of %d values, got %d and %d",
			lin.Name, n, n*p.In, n*p.Out, len(x), len(y))
	}
	p.addDelta(y, x, n)
	return nil
}

// addDelta is AddDelta without the checks.
func (p *Pair) addDelta(y, x []float32, n int) {
	s := float32(p.scaling)
	var stack [64]float32 // the generator's hook should not allocate for usual ranks
	t := stack[:0]
	if p.R > len(stack) {
		t = make([]float32, p.R)
	}
	t = t[:p.R]
	for row := range n {
		xr := x[row*p.In : (row+1)*p.In]
		for k := range p.R {
			ak := p.A[k*p.In : (k+1)*p.In]
			var sum float32
			for i, v := range xr {
				sum += v * ak[i]
			}
			t[k] = s * sum
		}
		yr := y[row*p.Out : (row+1)*p.Out]
		for o := range yr {
			bo := p.B[o*p.R : (o+1)*p.R]
			var sum float32
			for k, v := range t {
				sum += v * bo[k]
			}
			yr[o] += sum
		}
	}
}

// The generator's hook.
var (
	_ infer.Adapter = (*Adapter)(nil)
	_ infer.Adapter = (*Set)(nil)
)

// cloneConfig deep-copies the slices and maps of c.
func cloneConfig(c Config) Config {
	c.TargetModules.Names = cloneNonNil(c.TargetModules.Names)
	c.ExcludeModules.Names = cloneNonNil(c.ExcludeModules.Names)
	c.RankPattern = slices.Clone(c.RankPattern)
	c.AlphaPattern = slices.Clone(c.AlphaPattern)
	c.LayersToTransform = cloneNonNil(c.LayersToTransform)
	c.LayersPattern = slices.Clone(c.LayersPattern)
	c.ModulesToSave = cloneNonNil(c.ModulesToSave)
	if c.Unrecognized != nil {
		u := make(map[string]json.RawMessage, len(c.Unrecognized))
		for k, v := range c.Unrecognized {
			u[k] = slices.Clone(v)
		}
		c.Unrecognized = u
	}
	return c
}

// cloneNonNil clones s, keeping nil and empty apart.
func cloneNonNil[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}

// naturalCompare orders module names with embedded numbers by value, so
// "layers.2" sorts before "layers.10".
func naturalCompare(a, b string) int {
	x, y := a, b
	for x != "" && y != "" {
		dx, dy := digitPrefix(x), digitPrefix(y)
		if dx > 0 && dy > 0 {
			nx, errx := strconv.ParseUint(x[:dx], 10, 64)
			ny, erry := strconv.ParseUint(y[:dy], 10, 64)
			if errx == nil && erry == nil && nx != ny {
				if nx < ny {
					return -1
				}
				return 1
			}
			x, y = x[dx:], y[dy:]
			continue
		}
		if x[0] != y[0] {
			return strings.Compare(x[:1], y[:1])
		}
		x, y = x[1:], y[1:]
	}
	if len(x) != len(y) {
		return len(x) - len(y)
	}
	return strings.Compare(a, b)
}

func digitPrefix(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// fusedParts lists, for each fused module name of a phi3 block, the modules
// whose rows it stacks, in order.
var fusedParts = map[string][]string{
	"self_attn.qkv_proj": {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
	"mlp.gate_up_proj":   {"mlp.gate_proj", "mlp.up_proj"},
}

// splitFused replaces each pair of a fused module of a phi3 base by one pair
// per part: the same A and the part's rows of B, so that every part's term
// scaling·B_part·A·x is exactly PEFT's fused term restricted to its rows.
// Such an adapter generates and merges as PEFT's does; it cannot be trained
// (its parts would no longer share A) or saved (Trainable and Save
// refuse it).
func (a *Adapter) splitFused(base *model.Weights) error {
	if base.Config.Arch != "phi3" {
		return nil
	}
	all, err := baseLinears(base)
	if err != nil {
		return err
	}
	byName := make(map[string]*model.Linear, len(all))
	for _, bl := range all {
		byName[bl.lin.Name] = bl.lin
	}
	for _, name := range slices.Clone(a.modules) {
		for fused, parts := range fusedParts {
			prefix, ok := strings.CutSuffix(name, "."+fused)
			if !ok {
				continue
			}
			p := a.pairs[name]
			row := 0
			for _, part := range parts {
				partName := prefix + "." + part
				lin := byName[partName]
				if lin == nil || lin.In != p.In || row+lin.Out > p.Out {
					return fmt.Errorf("lora: module %q: adapter A %v and B %v do not split into the base's %s", name,
						[]int{p.R, p.In}, []int{p.Out, p.R}, strings.Join(parts, ", "))
				}
				q := &Pair{
					Module: partName, In: p.In, Out: lin.Out, R: p.R,
					A:     slices.Clone(p.A),
					B:     slices.Clone(p.B[row*p.R : (row+lin.Out)*p.R]),
					alpha: p.alpha, scaling: p.scaling,
				}
				row += lin.Out
				if _, dup := a.pairs[partName]; dup {
					return fmt.Errorf("lora: module %q: the adapter also has a pair for its part %q", name, partName)
				}
				a.pairs[partName] = q
				a.modules = append(a.modules, partName)
				if a.split == nil {
					a.split = make(map[string]bool)
				}
				a.split[partName] = true
			}
			if row != p.Out {
				return fmt.Errorf("lora: module %q: B has %d rows, the base's %s have %d", name, p.Out, strings.Join(parts, ", "), row)
			}
			delete(a.pairs, name)
			a.modules = slices.DeleteFunc(a.modules, func(m string) bool { return m == name })
		}
	}
	slices.SortFunc(a.modules, naturalCompare)
	return nil
}
