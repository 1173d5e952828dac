package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
)

func runMerge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	var mf modelFlags
	registerBaseFlags(fs, &mf)
	adapter := fs.String("adapter", "", "LoRA adapter directory to merge, in PEFT's format (required)")
	out := fs.String("out", "", "output directory for the merged Hugging Face checkpoint (required)")
	dtypeName := fs.String("dtype", "f32", "dtype of the written tensors: f32, bf16 or f16")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: golora merge --adapter DIR --out DIR [flags]

Folds a LoRA adapter into its base model, W' = W + (alpha/r)·B·A, and writes
the result as a plain Hugging Face checkpoint (config.json, model.safetensors
and the base's tokenizer) that runs without the adapter, here or in
transformers.

The base is loaded and merged in float32: the adapter's update is added to
the full-precision weights, never re-quantized, since rounding the merged
weights to 4 bits would change the model's outputs. If the base checkpoint is
itself stored in NF4, its weights are dequantized first and the merged model
is written dense. To get a 4-bit merged model, run "golora quantize" on the
output.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *adapter == "" || *out == "" {
		fmt.Fprintln(stderr, "golora merge: --adapter and --out are required")
		fs.Usage()
		return errUsage
	}
	dtype, err := parseDType(*dtypeName)
	if err != nil {
		return err
	}
	if err := checkNewOut(*out); err != nil {
		return err
	}
	ck, err := mf.load(ctx, stderr)
	if err != nil {
		return err
	}
	a, err := lora.LoadFor(*adapter, ck.Weights)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	merged := ck.Weights
	if quantizedLinears(ck.Weights) > 0 {
		fmt.Fprintln(stderr, "the base is quantized: merging into its dequantized weights; the merged model is written dense")
		if merged, err = lora.MergedDense(ck.Weights, a); err != nil {
			return err
		}
	} else if err := lora.Merge(ck.Weights, a); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := writeModelDir(*out, ck, merged, dtype); err != nil {
		return err
	}
	pairs := a.Modules()
	fmt.Fprintf(stdout, "merged adapter %s (%d modules, %d parameters, r %d, alpha %g) into %s\n",
		*adapter, len(pairs), a.NumParams(), a.Config.R, a.Config.Alpha, ck.Path)
	return printWritten(stdout, *out, *dtypeName)
}

// checkNewOut refuses an --out that holds files: a model directory is
// written whole or not at all, into a new or empty directory.
func checkNewOut(out string) error {
	entries, err := os.ReadDir(out)
	if err == nil && len(entries) > 0 {
		return fmt.Errorf("--out %s exists and is not empty: choose a new directory (the model is written whole, or not at all, into a new one)", out)
	}
	return nil
}

// writeModelDir writes w in Hugging Face's format, with ck's tokenizer, as
// the directory out: complete, or absent if anything fails (a full disk,
// a crash), never partial.
func writeModelDir(out string, ck *model.Base, w *model.Weights, dtype model.DType) error {
	return atomicfile.WriteDir(out, func(dir string) error {
		if err := ck.WriteTokenizer(dir); err != nil {
			return err
		}
		return model.WriteHF(dir, w, dtype)
	})
}

// registerBaseFlags registers modelFlags' --model and --tokenizer on fs,
// without its --quantize: merge and quantize load the base in float32.
func registerBaseFlags(fs *flag.FlagSet, mf *modelFlags) {
	all := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	mf.register(all, "none")
	for _, name := range []string{"model", "tokenizer"} {
		f := all.Lookup(name)
		fs.Var(f.Value, f.Name, f.Usage)
	}
}

// parseDType maps a --dtype flag to the dtype WriteHF writes.
func parseDType(name string) (model.DType, error) {
	switch name {
	case "f32":
		return model.F32, nil
	case "bf16":
		return model.BF16, nil
	case "f16":
		return model.F16, nil
	}
	return "", fmt.Errorf("--dtype %q: want f32, bf16 or f16", name)
}

// quantizedLinears counts the quantized linear layers of w, output head
// included.
func quantizedLinears(w *model.Weights) int {
	n := 0
	for _, lin := range append(w.Linears(), w.Output) {
		if lin != nil && lin.Quantized != nil {
			n++
		}
	}
	return n
}

// printWritten lists the checkpoint files in dir with their sizes.
func printWritten(stdout io.Writer, dir, dtypeName string) error {
	fmt.Fprintf(stdout, "wrote %s (float tensors in %s):\n", dir, dtypeName)
	for _, name := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "tokenizer.bin"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  %-22s %10d bytes\n", name, st.Size())
	}
	return nil
}
