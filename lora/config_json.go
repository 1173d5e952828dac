package lora

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
)

// peftType is the only peft_type this package reads and writes.
const peftType = "LORA"

// unsupportedKeys are adapter_config.json keys of newer PEFT versions that
// change what the adapter computes or which tensors it has. They are fine
// when unset (null, false, empty) and refused otherwise, rather than ignored
// into a silently different model.
var unsupportedKeys = []string{
	"layer_replication",       // repeats base layers
	"lora_bias",               // adds a trained bias to lora_B
	"use_qalora",              // QA-LoRA pooling of the input
	"alora_invocation_tokens", // activated LoRA: only after given tokens
	"target_parameters",       // LoRA on raw parameters, not modules
	"trainable_token_indices", // trains embedding rows
}

// ParseConfig decodes and validates an adapter_config.json. Keys this package
// does not know are kept in Config.Unrecognized; see Config.UnmarshalJSON.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	if err := c.UnmarshalJSON(data); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// UnmarshalJSON decodes an adapter_config.json object as PEFT writes it. Keys
// that are absent take PEFT's defaults. peft_type must be "LORA". Keys this
// package does not interpret are kept in Unrecognized, except that options
// of newer PEFT versions that change the adapter's computation (e.g.
// layer_replication, lora_bias) are refused when set. It does not call
// Validate.
func (c *Config) UnmarshalJSON(data []byte) error {
	fields, err := decodeObject(data)
	if err != nil {
		return fmt.Errorf("lora: adapter config: %w", err)
	}
	out := DefaultConfig()
	pt, ok := fields["peft_type"]
	if !ok {
		return errors.New("lora: adapter config: no peft_type key (not a PEFT adapter config)")
	}
	var s string
	if err := json.Unmarshal(pt, &s); err != nil || s != peftType {
		return fmt.Errorf("lora: adapter config: peft_type is %s, want %q", pt, peftType)
	}
	// Sorted, so that of several bad keys the same one is always reported.
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		if err := out.decodeField(key, fields[key]); err != nil {
			return fmt.Errorf("lora: adapter config: key %q: %w", key, err)
		}
	}
	*c = out
	return nil
}

// decodeField stores one adapter_config.json key in c.
func (c *Config) decodeField(key string, raw json.RawMessage) error {
	var err error
	switch key {
	case "peft_type":
	case "r":
		c.R, err = decodeInt(raw)
	case "lora_alpha":
		c.Alpha, err = decodeFloat(raw)
	case "lora_dropout":
		c.Dropout, err = decodeFloat(raw)
	case "bias":
		err = json.Unmarshal(raw, &c.Bias)
		if err == nil && isNull(raw) {
			err = errors.New("null")
		}
	case "target_modules":
		c.TargetModules, err = decodeModules(raw)
	case "exclude_modules":
		c.ExcludeModules, err = decodeModules(raw)
	case "use_rslora":
		c.UseRSLoRA, err = decodeBool(raw)
	case "use_dora":
		c.UseDoRA, err = decodeBool(raw)
	case "fan_in_fan_out":
		c.FanInFanOut, err = decodeBool(raw)
	case "inference_mode":
		c.InferenceMode, err = decodeBool(raw)
	case "init_lora_weights":
		c.InitLoRAWeights, err = decodeInit(raw)
	case "rank_pattern":
		c.RankPattern, err = decodeRankPattern(raw)
	case "alpha_pattern":
		c.AlphaPattern, err = decodeAlphaPattern(raw)
	case "layers_to_transform":
		c.LayersToTransform, err = decodeLayers(raw)
	case "layers_pattern":
		c.LayersPattern, err = decodeStrings(raw, true)
	case "modules_to_save":
		c.ModulesToSave, err = decodeStrings(raw, false)
	case "task_type":
		c.TaskType, err = decodeOptString(raw)
	case "base_model_name_or_path":
		c.BaseModelNameOrPath, err = decodeOptString(raw)
	case "revision":
		c.Revision, err = decodeOptString(raw)
	default:
		for _, k := range unsupportedKeys {
			if k == key && !isUnset(raw) {
				return fmt.Errorf("set to %s, which golora does not support", raw)
			}
		}
		if c.Unrecognized == nil {
			c.Unrecognized = make(map[string]json.RawMessage)
		}
		c.Unrecognized[key] = append(json.RawMessage(nil), raw...)
	}
	return err
}

// MarshalJSON encodes c as adapter_config.json: every key PEFT writes
// (keys in sorted order, as PEFT's save_pretrained does), exclude_modules
// when it is set, and the Unrecognized keys. RankPattern and AlphaPattern keep
// their order, which decides the first match.
func (c Config) MarshalJSON() ([]byte, error) {
	fields := make(map[string]json.RawMessage, 24+len(c.Unrecognized))
	for k, v := range c.Unrecognized {
		if !json.Valid(v) {
			return nil, fmt.Errorf("lora: config: unrecognized key %q holds invalid JSON", k)
		}
		fields[k] = v
	}
	put := func(key string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("lora: config: key %q: %w", key, err)
		}
		fields[key] = b
		return nil
	}
	optString := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	bias := c.Bias
	if bias == "" {
		bias = "none"
	}
	targets, err := encodeModules(c.TargetModules)
	if err != nil {
		return nil, err
	}
	fields["target_modules"] = targets
	if !c.ExcludeModules.isZero() {
		ex, err := encodeModules(c.ExcludeModules)
		if err != nil {
			return nil, err
		}
		fields["exclude_modules"] = ex
	}
	if math.IsNaN(c.Alpha) || math.IsInf(c.Alpha, 0) || math.IsNaN(c.Dropout) || math.IsInf(c.Dropout, 0) {
		return nil, errors.New("lora: config: lora_alpha and lora_dropout must be finite")
	}
	var layersPattern any
	switch len(c.LayersPattern) {
	case 0:
	case 1:
		layersPattern = c.LayersPattern[0]
	default:
		layersPattern = c.LayersPattern
	}
	var layers any
	if c.LayersToTransform != nil {
		layers = c.LayersToTransform
	}
	var modulesToSave any
	if c.ModulesToSave != nil {
		modulesToSave = c.ModulesToSave
	}
	rankPattern, err := encodeRankPattern(c.RankPattern)
	if err != nil {
		return nil, err
	}
	alphaPattern, err := encodeAlphaPattern(c.AlphaPattern)
	if err != nil {
		return nil, err
	}
	fields["rank_pattern"] = rankPattern
	fields["alpha_pattern"] = alphaPattern
	for _, kv := range []struct {
		key string
		v   any
	}{
		{"peft_type", peftType},
		{"r", c.R},
		{"lora_alpha", c.Alpha},
		{"lora_dropout", c.Dropout},
		{"bias", bias},
		{"use_rslora", c.UseRSLoRA},
		{"use_dora", c.UseDoRA},
		{"init_lora_weights", c.InitLoRAWeights.jsonValue()},
		{"layers_to_transform", layers},
		{"layers_pattern", layersPattern},
		{"modules_to_save", modulesToSave},
		{"task_type", optString(c.TaskType)},
		{"base_model_name_or_path", optString(c.BaseModelNameOrPath)},
		{"revision", optString(c.Revision)},
		{"fan_in_fan_out", c.FanInFanOut},
		{"inference_mode", c.InferenceMode},
	} {
		if err := put(kv.key, kv.v); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(fields); err != nil {
		return nil, fmt.Errorf("lora: config: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// jsonValue is init_lora_weights as PEFT spells it.
func (i Init) jsonValue() any {
	switch i {
	case "", InitKaiming:
		return true
	case InitLinearDefault:
		return false
	}
	return string(i)
}

func decodeInit(raw json.RawMessage) (Init, error) {
	if isNull(raw) {
		// PEFT tests init_lora_weights for truth; None skips initialization
		// exactly like False.
		return InitLinearDefault, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		if b {
			return InitKaiming, nil
		}
		return InitLinearDefault, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("want true, false or a string, got %s", raw)
	}
	switch s {
	case "gaussian":
		return InitGaussian, nil
	case "", string(InitKaiming), string(InitLinearDefault):
		// These are golora's names for the JSON booleans, not PEFT values.
		return "", fmt.Errorf("unknown initialization %q", s)
	}
	return Init(s), nil
}

func decodeModules(raw json.RawMessage) (Modules, error) {
	if isNull(raw) {
		return Modules{}, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == "" {
			return Modules{}, errors.New("empty string")
		}
		return Modules{Regex: s}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return Modules{}, fmt.Errorf("want a list of names, a string or null, got %s", raw)
	}
	if list == nil {
		list = []string{}
	}
	return Modules{Names: list}, nil
}

func encodeModules(m Modules) (json.RawMessage, error) {
	switch {
	case m.Names != nil && m.Regex != "":
		return nil, errors.New("lora: config: modules given both as a list and a regular expression")
	case m.Regex != "":
		return json.Marshal(m.Regex)
	case m.Names != nil:
		return json.Marshal(m.Names)
	}
	return json.RawMessage("null"), nil
}

func decodeRankPattern(raw json.RawMessage) ([]RankRule, error) {
	kvs, err := decodeOrdered(raw)
	if err != nil {
		return nil, err
	}
	var rules []RankRule
	for _, kv := range kvs {
		r, err := decodeInt(kv.value)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", kv.key, err)
		}
		rules = append(rules, RankRule{Pattern: kv.key, R: r})
	}
	return rules, nil
}

func decodeAlphaPattern(raw json.RawMessage) ([]AlphaRule, error) {
	kvs, err := decodeOrdered(raw)
	if err != nil {
		return nil, err
	}
	var rules []AlphaRule
	for _, kv := range kvs {
		a, err := decodeFloat(kv.value)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", kv.key, err)
		}
		rules = append(rules, AlphaRule{Pattern: kv.key, Alpha: a})
	}
	return rules, nil
}

func encodeRankPattern(rules []RankRule) (json.RawMessage, error) {
	var kvs []keyValue
	for _, r := range rules {
		kvs = append(kvs, keyValue{r.Pattern, json.RawMessage(strconv.Itoa(r.R))})
	}
	return encodeOrdered(kvs)
}

func encodeAlphaPattern(rules []AlphaRule) (json.RawMessage, error) {
	var kvs []keyValue
	for _, r := range rules {
		b, err := json.Marshal(r.Alpha)
		if err != nil {
			return nil, fmt.Errorf("lora: config: alpha_pattern %q: %w", r.Pattern, err)
		}
		kvs = append(kvs, keyValue{r.Pattern, b})
	}
	return encodeOrdered(kvs)
}

// keyValue is one member of a JSON object, for objects whose order matters.
type keyValue struct {
	key   string
	value json.RawMessage
}

// decodeOrdered decodes a JSON object (or null, as empty) keeping member
// order. A repeated key keeps its first position and its last value, as
// Python's json module does.
func decodeOrdered(raw json.RawMessage) ([]keyValue, error) {
	if isNull(raw) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("want an object, got %s", raw)
	}
	var kvs []keyValue
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("object key is %v, not a string", tok)
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fmt.Errorf("value of %q: %w", key, err)
		}
		replaced := false
		for i := range kvs {
			if kvs[i].key == key {
				kvs[i].value = value
				replaced = true
			}
		}
		if !replaced {
			kvs = append(kvs, keyValue{key, value})
		}
	}
	return kvs, nil
}

func encodeOrdered(kvs []keyValue) (json.RawMessage, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, kv := range kvs {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := json.Marshal(kv.key)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(kv.value)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// decodeObject decodes a JSON object into its members, refusing anything
// else (including trailing data).
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	if !json.Valid(data) {
		var probe any
		err := json.Unmarshal(data, &probe)
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return nil, errors.New("not a JSON object")
	}
	return fields, nil
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// isUnset reports whether raw is null, false, 0, "" or an empty list or object.
func isUnset(raw json.RawMessage) bool {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return false
	}
	switch v := v.(type) {
	case nil:
		return true
	case bool:
		return !v
	case float64:
		return v == 0
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// decodeInt accepts a JSON integer (or a float with an integral value, as
// Python writes 16.0).
func decodeInt(raw json.RawMessage) (int, error) {
	f, err := decodeFloat(raw)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<31 {
		return 0, fmt.Errorf("want an integer, got %s", raw)
	}
	return int(f), nil
}

func decodeFloat(raw json.RawMessage) (float64, error) {
	trimmed := bytes.TrimSpace(raw)
	var n json.Number
	if len(trimmed) == 0 || !(trimmed[0] == '-' || trimmed[0] >= '0' && trimmed[0] <= '9') ||
		json.Unmarshal(trimmed, &n) != nil {
		return 0, fmt.Errorf("want a number, got %s", raw)
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, fmt.Errorf("want a finite number, got %s", raw)
	}
	return f, nil
}

func decodeBool(raw json.RawMessage) (bool, error) {
	if isNull(raw) {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, fmt.Errorf("want true or false, got %s", raw)
	}
	return b, nil
}

func decodeOptString(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("want a string or null, got %s", raw)
	}
	return s, nil
}

// decodeStrings accepts null or a list of strings, and a single string when
// single is true.
func decodeStrings(raw json.RawMessage, single bool) ([]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	if single {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			return []string{s}, nil
		}
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("want a list of strings or null, got %s", raw)
	}
	return list, nil
}

// decodeLayers accepts null, one integer or a list of integers.
func decodeLayers(raw json.RawMessage) ([]int, error) {
	if isNull(raw) {
		return nil, nil
	}
	if i, err := decodeInt(raw); err == nil {
		return []int{i}, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("want an integer, a list of integers or null, got %s", raw)
	}
	out := make([]int, 0, len(list))
	for _, item := range list {
		i, err := decodeInt(item)
		if err != nil {
			return nil, err
		}
		out = append(out, i)
	}
	return out, nil
}
