package lora

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/golora/golora/model"
)

// AllLinear is the TargetModules shorthand (PEFT's "all-linear") for every
// linear layer of the transformer blocks, leaving out the output head.
const AllLinear = "all-linear"

// defaultTargets is what PEFT targets on a LLaMA model when the config gives
// no target_modules (its TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
// entry for "llama").
var defaultTargets = []string{"q_proj", "v_proj"}

// Modules selects modules by their dotted Hugging Face names, as PEFT's
// target_modules and exclude_modules do. Exactly one form is used:
//
//   - Names (a JSON list): a module matches if its name equals an entry or
//     ends with "." followed by the entry, so "q_proj" selects
//     "model.layers.3.self_attn.q_proj".
//   - Regex (a JSON string): a module matches if the regular expression
//     matches its whole name. The expression uses Go's RE2 syntax, which
//     agrees with Python's re for the expressions found in adapter configs
//     but has no backreferences or lookaround. For TargetModules the string
//     AllLinear is not a regex but the all-linear shorthand.
//
// The zero Modules (JSON null) selects nothing for exclude_modules and PEFT's
// LLaMA default, q_proj and v_proj, for target_modules. A non-nil empty Names
// is an explicit empty list and selects nothing.
type Modules struct {
	Names []string
	Regex string
}

// ModuleNames returns the list form of Modules.
func ModuleNames(names ...string) Modules {
	return Modules{Names: append([]string{}, names...)}
}

// ModuleRegex returns the string (full-match regular expression) form of Modules.
func ModuleRegex(expr string) Modules {
	return Modules{Regex: expr}
}

// isZero reports whether m is JSON null.
func (m Modules) isZero() bool { return m.Names == nil && m.Regex == "" }

// RankRule overrides the rank of the modules its Pattern names.
type RankRule struct {
	Pattern string
	R       int
}

// AlphaRule overrides lora_alpha of the modules its Pattern names.
type AlphaRule struct {
	Pattern string
	Alpha   float64
}

// Init selects how New initializes a pair (PEFT's init_lora_weights).
type Init string

const (
	// InitKaiming (JSON true, PEFT's default) draws A from kaiming_uniform
	// with a = √5, which is U(−1/√in, 1/√in), and sets B = 0, so a new
	// adapter is an exact no-op.
	InitKaiming Init = "kaiming"
	// InitGaussian (JSON "gaussian") draws A from N(0, σ = 1/r) and sets
	// B = 0. PEFT passes std=1/r to torch's normal_, so the variance is 1/r².
	InitGaussian Init = "gaussian"
	// InitLinearDefault (JSON false) leaves both matrices with PyTorch's
	// default nn.Linear initialization, A ~ U(−1/√in, 1/√in) and
	// B ~ U(−1/√r, 1/√r), so the adapter is not a no-op. PEFT offers it for
	// debugging and tests.
	InitLinearDefault Init = "linear-default"
)

// baseModifyingInits are init_lora_weights methods that rewrite the base
// weights when the adapter is created (PiSSA, OLoRA, CorDA, LoftQ). An
// adapter saved that way only fits its modified base, which golora does not
// have, so such configs are refused instead of loaded into a silent mismatch.
var baseModifyingInits = []string{"pissa", "olora", "corda", "loftq"}

// Config is PEFT's LoraConfig: what an adapter targets, its rank, scaling and
// initialization. Field comments give the adapter_config.json key. Start from
// DefaultConfig; an empty Bias or InitLoRAWeights means the default.
type Config struct {
	R       int     // r: rank; default 8
	Alpha   float64 // lora_alpha; default 8
	Dropout float64 // lora_dropout, applied to the adapter's input in training; default 0

	// Bias is "none", "all" or "lora_only": which bias vectors PEFT trains.
	// LLaMA linears have no bias, so all three train none here.
	Bias string

	TargetModules  Modules // target_modules; see Modules and AllLinear
	ExcludeModules Modules // exclude_modules (PEFT ≥ 0.14): never targeted

	UseRSLoRA bool // use_rslora: scaling alpha/√r instead of alpha/r
	UseDoRA   bool // use_dora: DoRA is not supported; Validate refuses it

	InitLoRAWeights Init // init_lora_weights; default InitKaiming

	// RankPattern and AlphaPattern (rank_pattern, alpha_pattern) override r
	// and lora_alpha per module. As in PEFT, the first rule in order whose
	// Pattern P makes the regular expression (.*\.)?(P) match the whole
	// module name applies, so "q_proj" names every q_proj and
	// "layers\.0\.self_attn\.q_proj" only the first.
	RankPattern  []RankRule
	AlphaPattern []AlphaRule

	// LayersToTransform (layers_to_transform) limits a list TargetModules to
	// the blocks with these indices; nil means all blocks. The index is the
	// number after the last ".<word>." in the name, or after
	// ".<LayersPattern>." when LayersPattern (layers_pattern) is set.
	LayersToTransform []int
	LayersPattern     []string

	// ModulesToSave (modules_to_save) lists modules PEFT trains and saves in
	// full. golora does not support it: Validate refuses a non-empty list,
	// because loading such an adapter without those weights would silently
	// produce a different model.
	ModulesToSave []string

	TaskType            string // task_type, e.g. "CAUSAL_LM"; "" is JSON null
	BaseModelNameOrPath string // base_model_name_or_path; "" is JSON null
	Revision            string // revision of the base model; "" is JSON null

	// FanInFanOut (fan_in_fan_out) only concerns GPT-2 style Conv1D layers;
	// PEFT ignores it for nn.Linear, and so does golora. It is kept so that a
	// saved config says what was loaded.
	FanInFanOut   bool
	InferenceMode bool // inference_mode: PEFT freezes the adapter when true

	// Unrecognized holds the adapter_config.json keys this package does not
	// interpret (auto_mapping, megatron_config, keys of newer PEFT versions, …),
	// as read, so that Save writes them back unchanged.
	Unrecognized map[string]json.RawMessage
}

// DefaultConfig returns PEFT's LoraConfig defaults: r 8, lora_alpha 8,
// dropout 0, bias "none", Kaiming init, PEFT's default targets.
func DefaultConfig() Config {
	return Config{R: 8, Alpha: 8, Bias: "none", InitLoRAWeights: InitKaiming}
}

// Validate reports the first problem with c: a value out of range, a regular
// expression that does not compile, an option golora does not support.
func (c *Config) Validate() error {
	_, err := c.compile()
	return err
}

// matcher is a validated Config with its regular expressions compiled.
type matcher struct {
	cfg        *Config
	targetRe   *regexp.Regexp // string form of TargetModules; nil for a list
	allLinear  bool
	targets    []string       // list form of TargetModules (defaulted)
	excludeRe  *regexp.Regexp // string form of ExcludeModules
	layerIndex []*regexp.Regexp
	rankRes    []*regexp.Regexp // parallel to cfg.RankPattern
	alphaRes   []*regexp.Regexp // parallel to cfg.AlphaPattern
}

// compile validates c and prepares its module selection: the scalar
// settings, then target_modules, exclude_modules, the layer selection and
// the per-module rank and alpha patterns.
func (c *Config) compile() (*matcher, error) {
	if err := c.validateScalars(); err != nil {
		return nil, err
	}
	m := &matcher{cfg: c}
	for _, phase := range []func(*matcher) error{c.compileTargets, c.compileExcludes, c.compileLayers, c.compilePatterns} {
		if err := phase(m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// validateScalars checks the settings that stand alone: rank, alpha,
// dropout, bias and the unsupported options.
func (c *Config) validateScalars() error {
	if c.R <= 0 {
		return fmt.Errorf("lora: config: r must be a positive integer, got %d", c.R)
	}
	if math.IsNaN(c.Alpha) || math.IsInf(c.Alpha, 0) || c.Alpha == 0 {
		return fmt.Errorf("lora: config: lora_alpha must be a finite non-zero number, got %v", c.Alpha)
	}
	if !(c.Dropout >= 0 && c.Dropout < 1) {
		return fmt.Errorf("lora: config: lora_dropout must be in [0, 1), got %v", c.Dropout)
	}
	switch c.Bias {
	case "", "none", "all", "lora_only":
	default:
		return fmt.Errorf("lora: config: bias must be \"none\", \"all\" or \"lora_only\", got %q", c.Bias)
	}
	if c.UseDoRA {
		return errors.New("lora: config: use_dora: DoRA is not supported")
	}
	if err := c.InitLoRAWeights.validate(); err != nil {
		return err
	}
	if len(c.ModulesToSave) > 0 {
		return fmt.Errorf("lora: config: modules_to_save %q is not supported (golora trains and stores only LoRA pairs)", c.ModulesToSave)
	}
	return nil
}

// compileTargets sets m's module selection from target_modules.
func (c *Config) compileTargets(m *matcher) error {
	t := c.TargetModules
	switch {
	case t.Names != nil && t.Regex != "":
		return errors.New("lora: config: target_modules has both a list and a regular expression")
	case t.Regex == AllLinear:
		m.allLinear = true
	case t.Regex != "":
		re, err := regexp.Compile(`^(?:` + t.Regex + `)$`)
		if err != nil {
			return fmt.Errorf("lora: config: target_modules regular expression %q: %w", t.Regex, err)
		}
		m.targetRe = re
	case t.Names == nil:
		m.targets = defaultTargets
	case len(t.Names) == 0:
		return errors.New("lora: config: target_modules is an empty list")
	default:
		for _, name := range t.Names {
			if name == "" {
				return errors.New("lora: config: target_modules contains an empty name")
			}
		}
		m.targets = t.Names
	}
	return nil
}

// compileExcludes sets m's exclusion from exclude_modules.
func (c *Config) compileExcludes(m *matcher) error {
	e := c.ExcludeModules
	if e.Names != nil && e.Regex != "" {
		return errors.New("lora: config: exclude_modules has both a list and a regular expression")
	}
	if e.Regex != "" {
		re, err := regexp.Compile(`^(?:` + e.Regex + `)$`)
		if err != nil {
			return fmt.Errorf("lora: config: exclude_modules regular expression %q: %w", e.Regex, err)
		}
		m.excludeRe = re
	}
	return nil
}

// compileLayers sets how m finds a module's layer index, from
// layers_to_transform and layers_pattern.
func (c *Config) compileLayers(m *matcher) error {
	if c.LayersToTransform != nil {
		if m.targetRe != nil {
			return errors.New("lora: config: layers_to_transform cannot be used when target_modules is a regular expression")
		}
		for _, i := range c.LayersToTransform {
			if i < 0 {
				return fmt.Errorf("lora: config: layers_to_transform contains negative index %d", i)
			}
		}
	}
	if len(c.LayersPattern) == 0 {
		m.layerIndex = []*regexp.Regexp{regexp.MustCompile(`^.*\.[^.]*\.(\d+)\.`)}
		return nil
	}
	if c.LayersToTransform == nil {
		return errors.New("lora: config: layers_pattern needs layers_to_transform")
	}
	for _, p := range c.LayersPattern {
		re, err := regexp.Compile(`^.*\.` + p + `\.(\d+)\.`)
		if err != nil {
			return fmt.Errorf("lora: config: layers_pattern %q: %w", p, err)
		}
		m.layerIndex = append(m.layerIndex, re)
	}
	return nil
}

// compilePatterns compiles rank_pattern and alpha_pattern.
func (c *Config) compilePatterns(m *matcher) error {
	for _, rule := range c.RankPattern {
		if rule.R <= 0 {
			return fmt.Errorf("lora: config: rank_pattern %q: rank must be positive, got %d", rule.Pattern, rule.R)
		}
		re, err := compilePatternKey(rule.Pattern)
		if err != nil {
			return fmt.Errorf("lora: config: rank_pattern key %q: %w", rule.Pattern, err)
		}
		m.rankRes = append(m.rankRes, re)
	}
	for _, rule := range c.AlphaPattern {
		if math.IsNaN(rule.Alpha) || math.IsInf(rule.Alpha, 0) || rule.Alpha == 0 {
			return fmt.Errorf("lora: config: alpha_pattern %q: alpha must be finite and non-zero, got %v", rule.Pattern, rule.Alpha)
		}
		re, err := compilePatternKey(rule.Pattern)
		if err != nil {
			return fmt.Errorf("lora: config: alpha_pattern key %q: %w", rule.Pattern, err)
		}
		m.alphaRes = append(m.alphaRes, re)
	}
	return nil
}

// compilePatternKey builds PEFT's get_pattern_key test for one
// rank_pattern/alpha_pattern key: re.match(rf"(.*\.)?({key})$", name).
func compilePatternKey(key string) (*regexp.Regexp, error) {
	if key == "" {
		return nil, errors.New("empty pattern")
	}
	return regexp.Compile(`^(?:.*\.)?(?:` + key + `)$`)
}

func (i Init) validate() error {
	switch i {
	case "", InitKaiming, InitGaussian, InitLinearDefault:
		return nil
	}
	for _, p := range baseModifyingInits {
		if strings.HasPrefix(strings.ToLower(string(i)), p) {
			return fmt.Errorf("lora: config: init_lora_weights %q rewrites the base weights, which golora does not support (convert the adapter to plain LoRA with PEFT first)", string(i))
		}
	}
	// Other methods (e.g. "eva", "orthogonal") only choose the starting A and
	// B, which a loaded adapter replaces; New refuses them.
	return nil
}

// excluded reports whether exclude_modules removes name.
func (m *matcher) excluded(name string) bool {
	e := m.cfg.ExcludeModules
	if m.excludeRe != nil {
		return m.excludeRe.MatchString(name)
	}
	return matchesList(e.Names, name)
}

// matchesList is PEFT's list rule: equal to an entry, or ends with "."+entry.
func matchesList(list []string, name string) bool {
	for _, t := range list {
		if name == t || strings.HasSuffix(name, "."+t) {
			return true
		}
	}
	return false
}

// targetsModule reports whether the module called name is targeted, following
// PEFT's check_target_module_exists. leafNames is the list that all-linear
// stands for.
func (m *matcher) targetsModule(name string, leafNames []string) bool {
	if m.excluded(name) {
		return false
	}
	if m.targetRe != nil {
		return m.targetRe.MatchString(name)
	}
	list := m.targets
	if m.allLinear {
		list = leafNames
	}
	if slices.Contains(list, name) {
		return true
	}
	if !matchesList(list, name) {
		return false
	}
	if m.cfg.LayersToTransform == nil {
		return true
	}
	for _, re := range m.layerIndex {
		if sub := re.FindStringSubmatch(name); sub != nil {
			layer, err := strconv.Atoi(sub[1])
			return err == nil && slices.Contains(m.cfg.LayersToTransform, layer)
		}
	}
	return false
}

// whyNotTargeted explains why targetsModule(name, nil) is false: the
// exclusion, the layer selection or the target list.
func (m *matcher) whyNotTargeted(name string) string {
	switch {
	case m.excluded(name):
		return "it is excluded by exclude_modules"
	case m.targetRe == nil && !m.allLinear && matchesList(m.targets, name) && m.cfg.LayersToTransform != nil:
		return fmt.Sprintf("its layer is not in layers_to_transform %v", m.cfg.LayersToTransform)
	}
	return "it is not selected by target_modules " + m.cfg.TargetModules.describe()
}

// rankAlpha returns the rank and alpha of the module called name.
func (m *matcher) rankAlpha(name string) (int, float64) {
	r, alpha := m.cfg.R, m.cfg.Alpha
	for i, re := range m.rankRes {
		if re.MatchString(name) {
			r = m.cfg.RankPattern[i].R
			break
		}
	}
	for i, re := range m.alphaRes {
		if re.MatchString(name) {
			alpha = m.cfg.AlphaPattern[i].Alpha
			break
		}
	}
	return r, alpha
}

// scaling returns alpha/r, or alpha/√r with rsLoRA.
func scaling(r int, alpha float64, rslora bool) float64 {
	if rslora {
		return alpha / math.Sqrt(float64(r))
	}
	return alpha / float64(r)
}

// RankAlphaScaling returns the rank, alpha and scaling that c gives the module
// called name (after RankPattern and AlphaPattern).
func (c *Config) RankAlphaScaling(name string) (r int, alpha, scale float64, err error) {
	m, err := c.compile()
	if err != nil {
		return 0, 0, 0, err
	}
	r, alpha = m.rankAlpha(name)
	return r, alpha, scaling(r, alpha, c.UseRSLoRA), nil
}

// Select returns the linear layers of base that c targets, in base order
// (blocks in order; q, k, v, o, gate, up, down within a block; the output
// head last). It is an error if c is invalid or targets nothing.
func (c *Config) Select(base *model.Weights) ([]*model.Linear, error) {
	m, err := c.compile()
	if err != nil {
		return nil, err
	}
	return m.selectLinears(base)
}

func (m *matcher) selectLinears(base *model.Weights) ([]*model.Linear, error) {
	all, err := baseLinears(base)
	if err != nil {
		return nil, err
	}
	leaves := blockLeafNames(base)
	var out []*model.Linear
	for _, bl := range all {
		if m.allLinear && bl.head {
			continue
		}
		if m.targetsModule(bl.lin.Name, leaves) {
			out = append(out, bl.lin)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("lora: target_modules %s matches no linear layer of the base model", m.cfg.TargetModules.describe())
	}
	return out, nil
}

// describe renders m for error messages the way it appears in JSON.
func (m Modules) describe() string {
	switch {
	case m.Regex != "":
		return strconv.Quote(m.Regex)
	case m.Names == nil:
		return fmt.Sprintf("null (default %q)", defaultTargets)
	default:
		return fmt.Sprintf("%q", m.Names)
	}
}

// baseLinear is one linear layer of a base model.
type baseLinear struct {
	lin  *model.Linear
	head bool // the output head (lm_head)
}

// baseLinears lists the linear layers of w in base order, skipping nil ones.
func baseLinears(w *model.Weights) ([]baseLinear, error) {
	if w == nil {
		return nil, errors.New("lora: base model is nil")
	}
	var out []baseLinear
	seen := make(map[string]bool)
	add := func(lin *model.Linear, head bool, where string) error {
		if lin == nil {
			return nil
		}
		if lin.Name == "" {
			return fmt.Errorf("lora: base model: %s has no module name", where)
		}
		if seen[lin.Name] {
			return fmt.Errorf("lora: base model: module name %q appears twice", lin.Name)
		}
		seen[lin.Name] = true
		out = append(out, baseLinear{lin: lin, head: head})
		return nil
	}
	for i := range w.Layers {
		l := &w.Layers[i]
		for _, nl := range l.Linears() {
			if err := add(*nl.Linear, false, fmt.Sprintf("layer %d %s", i, nl.Module)); err != nil {
				return nil, err
			}
		}
	}
	if err := add(w.Output, true, "output head"); err != nil {
		return nil, err
	}
	return out, nil
}

// blockLeafNames is what PEFT expands all-linear into: the distinct last
// name components of the block linears.
func blockLeafNames(w *model.Weights) []string {
	var leaves []string
	for i := range w.Layers {
		l := &w.Layers[i]
		for _, nl := range l.Linears() {
			lin := *nl.Linear
			if lin == nil {
				continue
			}
			leaf := lin.Name[strings.LastIndexByte(lin.Name, '.')+1:]
			if !slices.Contains(leaves, leaf) {
				leaves = append(leaves, leaf)
			}
		}
	}
	return leaves
}
