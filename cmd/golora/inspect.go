package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/golora/golora/internal/fsutil"
	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
)

// inventory is what inspect reports about a model or an adapter.
type inventory struct {
	Path         string         `json:"path"`
	Kind         string         `json:"kind"`   // "model" or "adapter"
	Format       string         `json:"format"` // "hf", "llama2c", "gguf", "embedded", "peft"
	Config       map[string]any `json:"config"`
	Tensors      []tensorRow    `json:"tensors"`
	Params       int64          `json:"params"`
	Bytes        int64          `json:"bytes"`
	BitsPerParam float64        `json:"bits_per_param"`
}

// tensorRow is one logical tensor. A bitsandbytes 4-bit weight stored as
// several tensors (codes, absmax, quant map, ...) is one row with DType
// "NF4" or "FP4", its logical shape and the bytes of all its parts.
type tensorRow struct {
	Name         string  `json:"name"`
	DType        string  `json:"dtype"`
	Shape        []int   `json:"shape"`
	Params       int64   `json:"params"`
	Bytes        int64   `json:"bytes"`
	BitsPerParam float64 `json:"bits_per_param"`
}

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	quantize := fs.String("quantize", "", "load the model, quantizing its linear layers as they stream in (nf4), and describe the loaded weights; the load's time and throughput go to stderr")
	f32Emb := fs.Bool("float32-embedding", false, "with --quantize, hold the embedding and output head in float32 even when the checkpoint stores them in BF16 or F16")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: golora inspect [--json] PATH

Shows the config, tensors, dtypes, sizes and bits/parameter of a model
(Hugging Face directory, llama2.c .bin, .gguf, or "embedded") or of a PEFT
adapter directory.

Flags:
`)
		fs.PrintDefaults()
	}
	// Allow the path before or after the flags.
	var path string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		path, args = args[0], args[1:]
	}
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	if path == "" && fs.NArg() == 1 {
		path = fs.Arg(0)
	} else if fs.NArg() > 0 || path == "" {
		fs.Usage()
		return errUsage
	}
	var inv *inventory
	var err error
	switch *quantize {
	case "":
		inv, err = inspect(ctx, path)
	case "nf4":
		inv, err = inspectLoaded(ctx, path, *f32Emb, stderr)
	default:
		return fmt.Errorf("--quantize %q: want nf4", *quantize)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(inv)
	}
	return writeInventory(stdout, inv)
}

func inspect(ctx context.Context, path string) (*inventory, error) {
	if path == "embedded" {
		path = model.DefaultPath
	}
	if exists(filepath.Join(path, "adapter_config.json")) {
		// Validate as every other command does, so that inspect is a check.
		if _, err := lora.Load(path); err != nil {
			return nil, err
		}
		return safetensorsInventory(path, "adapter", "peft", "adapter_config.json", []string{"adapter_model.safetensors"})
	}
	format, err := model.DetectFormat(path)
	if err != nil {
		return nil, err
	}
	switch format {
	case model.FormatHF:
		files, err := hfWeightFiles(path)
		if err != nil {
			return nil, err
		}
		return safetensorsInventory(path, "model", format, "config.json", files)
	case model.FormatGGUF:
		return ggufInventory(path)
	}
	// llama2.c files and the embedded model carry no tensor directory: load
	// the weights.
	b, err := model.Load(ctx, path, model.LoadOptions{WeightsOnly: true})
	if err != nil {
		return nil, err
	}
	return weightsInventory(b.Path, format, b.Weights), nil
}

// inspectLoaded loads the model at path quantizing its linears to NF4 as
// they stream in (the path train's --quantize nf4 takes) and describes the
// loaded weights, logging the load's time and checkpoint throughput.
func inspectLoaded(ctx context.Context, path string, float32Embedding bool, stderr io.Writer) (*inventory, error) {
	if path == "embedded" {
		path = model.DefaultPath
	}
	format, err := model.DetectFormat(path)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	b, err := model.Load(ctx, path, model.LoadOptions{WeightsOnly: true, Quantizer: nf4.Quantizer(nf4.Options{}), Requantize: true,
		Float32Embedding: float32Embedding})
	if err != nil {
		return nil, err
	}
	secs := time.Since(start).Seconds()
	size := checkpointBytes(path)
	fmt.Fprintf(stderr, "loaded %s with NF4 linears in %.2fs: checkpoint %.2f GB, %.2f GB/s; weights %.2f GB resident\n",
		path, secs, float64(size)/1e9, float64(size)/1e9/secs, float64(b.Weights.WeightBytes().Total())/1e9)
	return weightsInventory(b.Path, format, b.Weights), nil
}

// checkpointBytes is the size of the file at path, or of the safetensors
// files of the directory at path (0 for the embedded model).
func checkpointBytes(path string) int64 {
	var n int64
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		return st.Size()
	}
	matches, _ := filepath.Glob(filepath.Join(path, "*.safetensors"))
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil {
			n += st.Size()
		}
	}
	return n
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// hfWeightFiles lists a Hugging Face directory's safetensors files: the shards
// of model.safetensors.index.json, or model.safetensors.
func hfWeightFiles(dir string) ([]string, error) {
	index := filepath.Join(dir, "model.safetensors.index.json")
	if !exists(index) {
		return []string{"model.safetensors"}, nil
	}
	raw, err := fsutil.ReadRegular(index, fsutil.ConfigLimit)
	if err != nil {
		return nil, err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", index, err)
	}
	var files []string
	for _, f := range idx.WeightMap {
		if !slices.Contains(files, f) {
			files = append(files, f)
		}
	}
	slices.Sort(files)
	return files, nil
}

func safetensorsInventory(dir, kind, format, configName string, files []string) (*inventory, error) {
	inv := &inventory{Path: dir, Kind: kind, Format: format}
	raw, err := fsutil.ReadRegular(filepath.Join(dir, configName), fsutil.ConfigLimit)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &inv.Config); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, configName), err)
	}
	for _, name := range files {
		f, err := safetensors.Open(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		rows, err := tensorRows(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		inv.Tensors = append(inv.Tensors, rows...)
	}
	inv.total()
	return inv, nil
}

// bnbStateSuffix marks the quant_state tensor of a bitsandbytes 4-bit weight.
const bnbStateSuffix = ".quant_state.bitsandbytes__"

// tensorRows lists f's tensors, folding each bitsandbytes 4-bit weight's
// parts into one row.
func tensorRows(f *safetensors.File) ([]tensorRow, error) {
	names := f.Names()
	parts := map[string]string{} // part name → the quantized weight it belongs to
	quantized := map[string]*tensorRow{}
	for _, n := range names {
		i := strings.Index(n, bnbStateSuffix)
		if i < 0 {
			continue
		}
		weight := n[:i]
		t, _ := f.Tensor(n)
		var state struct {
			QuantType string `json:"quant_type"`
			Shape     []int  `json:"shape"`
		}
		if err := json.Unmarshal(t.Data, &state); err != nil {
			return nil, fmt.Errorf("%s: tensor %s: quant_state is not JSON: %w", f.Path(), n, err)
		}
		row := &tensorRow{Name: weight, DType: strings.ToUpper(state.QuantType), Shape: state.Shape, Params: product(state.Shape)}
		quantized[weight] = row
		for _, m := range names {
			if m == weight || strings.HasPrefix(m, weight+".") {
				parts[m] = weight
			}
		}
	}
	var rows []tensorRow
	for _, n := range names {
		t, _ := f.Tensor(n)
		if w, ok := parts[n]; ok {
			quantized[w].Bytes += int64(len(t.Data))
			continue
		}
		rows = append(rows, tensorRow{Name: n, DType: string(t.DType), Shape: t.Shape, Params: product(t.Shape), Bytes: int64(len(t.Data))})
	}
	for _, r := range quantized {
		rows = append(rows, *r)
	}
	slices.SortStableFunc(rows, func(a, b tensorRow) int { return strings.Compare(a.Name, b.Name) })
	for i := range rows {
		rows[i].setBits()
	}
	return rows, nil
}

func ggufInventory(path string) (*inventory, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	inv := &inventory{Path: path, Kind: "model", Format: "gguf", Config: map[string]any{}}
	for _, kv := range f.KVs() {
		// Token lists run to tens of thousands of entries: show their length.
		if kv.Value.Len() > 16 {
			inv.Config[kv.Key] = fmt.Sprintf("[%d values]", kv.Value.Len())
			continue
		}
		inv.Config[kv.Key] = kv.Value.Interface()
	}
	for _, t := range f.Tensors() {
		b, err := f.TensorBytes(t.Name)
		if err != nil {
			return nil, err
		}
		shape := t.Shape()
		inv.Tensors = append(inv.Tensors, tensorRow{Name: t.Name, DType: t.Type.String(), Shape: shape,
			Params: product(shape), Bytes: int64(len(b))})
	}
	for i := range inv.Tensors {
		inv.Tensors[i].setBits()
	}
	inv.total()
	return inv, nil
}

// weightsInventory describes loaded weights, for formats whose files carry
// no tensor directory of their own (llama2.c) and for a model loaded with
// --quantize: each tensor as it is held, float32 or its matrix's format.
func weightsInventory(path, format string, w *model.Weights) *inventory {
	c := w.Config
	inv := &inventory{Path: path, Kind: "model", Format: format, Config: map[string]any{
		"hidden_size": c.Dim, "intermediate_size": c.HiddenDim, "num_hidden_layers": c.Layers,
		"num_attention_heads": c.Heads, "num_key_value_heads": c.KVHeads, "head_dim": c.HeadDim,
		"vocab_size": c.VocabSize, "max_position_embeddings": c.MaxSeqLen, "rms_norm_eps": c.NormEps,
		"rope_theta": c.RopeTheta, "tie_word_embeddings": c.TiedOutput,
	}}
	add := func(name string, n int, shape ...int) {
		inv.Tensors = append(inv.Tensors, tensorRow{Name: name, DType: "F32", Shape: shape, Params: int64(n), Bytes: 4 * int64(n)})
	}
	// matrix adds a [rows, cols] tensor held as m, or in float32 when m is
	// nil.
	matrix := func(name string, m quant.Matrix, rows, cols int) {
		if m == nil {
			add(name, rows*cols, rows, cols)
			return
		}
		inv.Tensors = append(inv.Tensors, tensorRow{Name: name, DType: strings.ToUpper(m.Format()), Shape: []int{rows, cols},
			Params: int64(rows) * int64(cols), Bytes: m.StorageBytes()})
	}
	matrix("model.embed_tokens.weight", w.EmbeddingMatrix, c.VocabSize, c.Dim)
	for l, layer := range w.Layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(p+"input_layernorm.weight", len(layer.AttnNorm), c.Dim)
		add(p+"post_attention_layernorm.weight", len(layer.MLPNorm), c.Dim)
		for _, nl := range layer.Linears() {
			lin := *nl.Linear
			matrix(lin.Name+".weight", lin.Quantized, lin.Out, lin.In)
		}
	}
	add("model.norm.weight", len(w.Norm), c.Dim)
	if !c.TiedOutput {
		matrix("lm_head.weight", w.Output.Quantized, w.Output.Out, w.Output.In)
	}
	for i := range inv.Tensors {
		inv.Tensors[i].setBits()
	}
	inv.total()
	return inv
}

func product(shape []int) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= int64(d)
	}
	return n
}

func (r *tensorRow) setBits() {
	if r.Params > 0 {
		r.BitsPerParam = 8 * float64(r.Bytes) / float64(r.Params)
	}
}

func (inv *inventory) total() {
	for _, t := range inv.Tensors {
		inv.Params += t.Params
		inv.Bytes += t.Bytes
	}
	if inv.Params > 0 {
		inv.BitsPerParam = 8 * float64(inv.Bytes) / float64(inv.Params)
	}
}

func writeInventory(w io.Writer, inv *inventory) error {
	fmt.Fprintf(w, "%s: %s (%s)\n\nconfig:\n", inv.Path, inv.Kind, inv.Format)
	keys := make([]string, 0, len(inv.Config))
	for k := range inv.Config {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, k := range keys {
		v, _ := json.Marshal(inv.Config[k])
		fmt.Fprintf(tw, "  %s\t%s\n", k, v)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ntensors:\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "name\tdtype\tshape\tparams\tbytes\tbits/param\t\n")
	for _, t := range inv.Tensors {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%d\t%.3f\t\n", t.Name, t.DType, t.Shape, t.Params, t.Bytes, t.BitsPerParam)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d tensors, %d parameters, %d bytes, %.3f bits/parameter\n", len(inv.Tensors), inv.Params, inv.Bytes, inv.BitsPerParam)
	return nil
}
