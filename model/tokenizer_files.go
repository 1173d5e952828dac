package model

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/model/tokenizer"

	"github.com/golora/golora/internal/fsutil"
)

// Tokenizer files of a checkpoint directory.
const (
	hfTokenizerFile       = "tokenizer.json"
	hfTokenizerConfigFile = "tokenizer_config.json"
	llama2cTokenizerFile  = "tokenizer.bin"
)

// hfTokenizerFiles is a Hugging Face tokenizer and the bytes it was parsed
// from.
type hfTokenizerFiles struct {
	tok    tokenizer.Tokenizer
	json   []byte // tokenizer.json
	config []byte // tokenizer_config.json; nil if there was none
}

// readHFTokenizer reads the tokenizer.json at path and the
// tokenizer_config.json beside it, if any, keeping their bytes.
func readHFTokenizer(path string) (*hfTokenizerFiles, error) {
	data, err := fsutil.ReadRegular(path, fsutil.TokenizerLimit)
	if err != nil {
		return nil, fmt.Errorf("model: tokenizer: %w", err)
	}
	cfgPath := filepath.Join(filepath.Dir(path), hfTokenizerConfigFile)
	cfg, err := fsutil.ReadRegular(cfgPath, fsutil.ConfigLimit)
	if errors.Is(err, fs.ErrNotExist) {
		cfg, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("model: tokenizer: %w", err)
	}
	tok, err := tokenizer.ParseHFWithConfig(data, cfg)
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", path, err)
	}
	return &hfTokenizerFiles{tok: tok, json: data, config: cfg}, nil
}

// findHFTokenizer returns the tokenizer file of a Hugging Face checkpoint
// directory: tokenizer.json, or else a llama2.c tokenizer.bin.
func findHFTokenizer(dir string) (string, error) {
	for _, name := range []string{hfTokenizerFile, llama2cTokenizerFile} {
		path := filepath.Join(dir, name)
		_, err := os.Stat(path)
		if err == nil {
			return path, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("model: %w", err)
		}
	}
	return "", fmt.Errorf("model: %s holds neither %s nor %s (%w): set LoadOptions.TokenizerPath", dir, hfTokenizerFile, llama2cTokenizerFile, ErrNoTokenizer)
}

// WriteTokenizer writes ck's tokenizer into dir (created if needed), next to
// the weights WriteHF writes there, so that Load(dir) reads the model back
// with the same tokenizer:
//
//   - a tokenizer loaded from a Hugging Face tokenizer.json is written as the
//     same tokenizer.json, and tokenizer_config.json if there was one, byte
//     for byte;
//   - a SentencePiece tokenizer (llama2.c, GGUF and embedded checkpoints) is
//     written as a llama2.c tokenizer.bin (see tokenizer.WriteLlama2C).
//
// Other tokenizers, such as a BPE tokenizer built in memory, cannot be
// written. WriteTokenizer refuses, writing nothing, to leave a file in dir
// that Load would read in place of or beside the new tokenizer: a
// tokenizer.json when writing tokenizer.bin, a tokenizer_config.json when
// writing a tokenizer.json that had none. Each file is replaced atomically.
func (ck *Base) WriteTokenizer(dir string) error {
	if ck == nil || ck.Tokenizer == nil {
		return errors.New("model: WriteTokenizer: no tokenizer")
	}
	if hf := ck.hfTokenizer; hf != nil && hf.tok == ck.Tokenizer {
		files := []tokenizerFile{{hfTokenizerFile, hf.json}}
		if hf.config != nil {
			files = append(files, tokenizerFile{hfTokenizerConfigFile, hf.config})
		} else if err := refuseStale(dir, hfTokenizerConfigFile, "it would change the tokenizer's BOS and EOS"); err != nil {
			return err
		}
		return writeTokenizerFiles(dir, files)
	}
	sp, ok := ck.Tokenizer.(*tokenizer.SentencePiece)
	if !ok {
		return fmt.Errorf("model: WriteTokenizer: a %T cannot be written: only SentencePiece tokenizers and those loaded from a tokenizer.json can", ck.Tokenizer)
	}
	if ck.Weights != nil && sp.VocabSize() != ck.Weights.Config.VocabSize {
		return fmt.Errorf("model: WriteTokenizer: the tokenizer has %d pieces but the model's vocabulary %d: a llama2.c tokenizer.bin must hold exactly the model's vocabulary",
			sp.VocabSize(), ck.Weights.Config.VocabSize)
	}
	var buf bytes.Buffer
	if err := tokenizer.WriteLlama2C(&buf, sp); err != nil {
		return fmt.Errorf("model: WriteTokenizer: %w", err)
	}
	if err := refuseStale(dir, hfTokenizerFile, "Load would read it instead of "+llama2cTokenizerFile); err != nil {
		return err
	}
	return writeTokenizerFiles(dir, []tokenizerFile{{llama2cTokenizerFile, buf.Bytes()}})
}

type tokenizerFile struct {
	name string
	data []byte
}

// refuseStale returns an error if dir holds a file name, saying why it is in
// the way.
func refuseStale(dir, name, why string) error {
	path := filepath.Join(dir, name)
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return fmt.Errorf("model: WriteTokenizer: %s already exists and %s; remove it or write elsewhere", path, why)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return fmt.Errorf("model: WriteTokenizer: %w", err)
	}
}

func writeTokenizerFiles(dir string, files []tokenizerFile) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("model: WriteTokenizer: %w", err)
	}
	for _, f := range files {
		err := atomicfile.WriteFile(filepath.Join(dir, f.name), func(w io.Writer) error {
			_, err := w.Write(f.data)
			return err
		}, 0o644)
		if err != nil {
			return fmt.Errorf("model: WriteTokenizer: %w", err)
		}
	}
	return nil
}
