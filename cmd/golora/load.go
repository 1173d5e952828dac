package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/golora/golora/model"
	"github.com/golora/golora/model/chat"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
)

// modelFlags are the flags every command that loads a base model shares.
type modelFlags struct {
	path      string
	tokenizer string
	quantize  string
	fs        *flag.FlagSet

	// float32Embedding widens a 16-bit embedding and output head even
	// with --quantize nf4, and a GGUF's block-quantized ones
	// (model.LoadOptions.Float32Embedding).
	float32Embedding bool

	// chatTemplate names which of the model's chat templates to use (""
	// for "default"); registerChatTemplate adds its flag.
	chatTemplate string

	// tokenizerOptional loads a model without a tokenizer (for
	// pre-tokenized data) instead of failing.
	tokenizerOptional bool
}

func (m *modelFlags) register(fs *flag.FlagSet, defaultQuant string) {
	fs.StringVar(&m.path, "model", "", "base model: a Hugging Face directory, a llama2.c .bin (with --tokenizer) or a .gguf; default: the embedded stories260K")
	fs.StringVar(&m.tokenizer, "tokenizer", "", "tokenizer file: required for a llama2.c .bin model (llama2.c tokenizer.bin); overrides a Hugging Face directory's own")
	fs.StringVar(&m.quantize, "quantize", defaultQuant, "how to hold the frozen linear layers: nf4 (4-bit, as QLoRA, quantized as the checkpoint streams in) or none (float32); linears a GGUF stores quantized (Q8_0, Q4_K, ...) are trained on as stored unless --quantize nf4 is given explicitly")
	fs.BoolVar(&m.float32Embedding, "float32-embedding", false, "hold the embedding and output head in float32 even when the checkpoint stores them in BF16 or F16 with --quantize nf4 (by default they stay 16-bit: lossless, half the memory), or a GGUF stores them in a block format (Q8_0, Q6_K, ...; by default they stay so without --quantize nf4)")
	m.fs = fs
}

// registerChatTemplate adds --chat-template, for the commands that render
// conversations.
func (m *modelFlags) registerChatTemplate(fs *flag.FlagSet) {
	fs.StringVar(&m.chatTemplate, "chat-template", chat.DefaultName, "which of the model's named chat templates to render conversations with (a tokenizer_config.json chat_template list, additional_chat_templates/NAME.jinja, a GGUF tokenizer.chat_template.NAME), e.g. tool_use")
}

// load reads the base model and quantizes it as asked, logging to stderr.
func (m *modelFlags) load(ctx context.Context, stderr io.Writer) (*model.Base, error) {
	var quantize quant.Quantizer
	switch m.quantize {
	case "nf4":
		quantize = nf4.Quantizer(nf4.Options{})
	case "none", "":
	default:
		return nil, fmt.Errorf("--quantize %q: want nf4 or none", m.quantize)
	}
	start := time.Now()
	var ck *model.Base
	var err error
	if m.path == "" {
		if m.tokenizer != "" {
			return nil, fmt.Errorf("--tokenizer is for a llama2.c --model; the embedded model has its own")
		}
		ck, err = model.Default()
	} else {
		// Quantize as the checkpoint streams in; only an explicit
		// --quantize re-quantizes a GGUF's own block formats.
		ck, err = model.Load(ctx, m.path, model.LoadOptions{TokenizerPath: m.tokenizer, TokenizerOptional: m.tokenizerOptional,
			Quantizer: quantize, Requantize: m.explicitQuantize(), Float32Embedding: m.float32Embedding})
	}
	if err != nil && m.tokenizer != "" && strings.EqualFold(filepath.Ext(m.path), ".gguf") {
		return nil, fmt.Errorf("--tokenizer: a .gguf --model carries its own tokenizer; leave --tokenizer out")
	}
	if errors.Is(err, model.ErrNoTokenizer) {
		return nil, fmt.Errorf("--model %s has no tokenizer: pass --tokenizer FILE (a tokenizer.json or a llama2.c tokenizer.bin)", m.path)
	}
	if err != nil {
		return nil, err
	}
	if quantize != nil && m.path == "" {
		if err := ck.Weights.Quantize(ctx, quantize); err != nil {
			return nil, err
		}
	}
	c := ck.Weights.Config
	b := ck.Weights.WeightBytes()
	fmt.Fprintf(stderr, "loaded %s (%s): dim %d, %d layers, %d heads (%d KV), vocab %d; linear layers %s; weights %.1f MB in %v\n",
		ck.Path, ck.Format, c.Dim, c.Layers, c.Heads, c.KVHeads, c.VocabSize, linearFormat(ck.Weights), float64(b.Total())/1e6,
		time.Since(start).Round(time.Millisecond))
	return ck, nil
}

// explicitQuantize reports whether --quantize was given on the command line
// (rather than left at the command's default).
func (m *modelFlags) explicitQuantize() bool {
	set := false
	if m.fs != nil {
		m.fs.Visit(func(f *flag.Flag) { set = set || f.Name == "quantize" })
	}
	return set && m.quantize != "none"
}

// linearFormat names how the block linears are held: "float32", or the
// quantized format of the first one (checkpoints quantize all alike).
func linearFormat(w *model.Weights) string {
	for _, lin := range w.Linears() {
		if lin.Quantized != nil {
			return strings.ToUpper(lin.Quantized.Format())
		}
	}
	return "float32"
}
