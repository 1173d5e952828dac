package train

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/golora/golora/internal/safetensors"
)

// Where a Trainer keeps its checkpoint, relative to Config.OutDir. There is
// only ever one: each new checkpoint atomically replaces the previous one.
const (
	CheckpointDir  = "checkpoint"
	CheckpointFile = "state.safetensors"
)

// CheckpointPath returns the path of the checkpoint file of a run writing to
// outDir.
func CheckpointPath(outDir string) string {
	return filepath.Join(outDir, CheckpointDir, CheckpointFile)
}

// A checkpoint is one safetensors file. For every parameter, in the order of
// loragraph.Adapter.Params, it holds the tensor under its PEFT key (e.g.
// "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight") and
// AdamW's first and second moments under that key plus ".exp_avg" and
// ".exp_avg_sq", all F32. The header's metadata holds "format" =
// checkpointFormat and "state", a JSON checkpointState.
const (
	checkpointFormat  = "golora-train-checkpoint"
	checkpointVersion = 1
	suffixExpAvg      = ".exp_avg"
	suffixExpAvgSq    = ".exp_avg_sq"
)

// checkpointState is everything besides tensors that a resumed run needs to
// continue exactly where the checkpoint was taken.
type checkpointState struct {
	Version    int          `json:"version"`
	Step       int          `json:"step"`
	AdamStep   int          `json:"adam_step"`
	Batcher    batcherState `json:"batcher"`
	DropoutRNG string       `json:"dropout_rng"` // hex of the math/rand/v2 PCG's MarshalBinary
	ConfigHash string       `json:"config_hash"`
	Tokens     int64        `json:"tokens"`
	ElapsedSec float64      `json:"elapsed_sec"`
	Params     []string     `json:"params"`
	// Done marks the checkpoint a run writes after its outputs: the run
	// is finished. A checkpoint at the last step without it comes from a
	// run interrupted while it evaluated or wrote its outputs.
	Done bool `json:"done,omitempty"`
}

// SaveCheckpoint writes the trainer's state to CheckpointPath(OutDir),
// atomically replacing the previous checkpoint: a crash while writing leaves
// the old one intact.
func (t *Trainer) SaveCheckpoint() error {
	if t.cfg.OutDir == "" {
		return errors.New("train: SaveCheckpoint: no OutDir configured")
	}
	rng, err := t.pcg.MarshalBinary()
	if err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	adamStep, m, v := t.opt.Moments()
	st := checkpointState{
		Version:    checkpointVersion,
		Step:       t.step,
		AdamStep:   adamStep,
		Batcher:    t.batcher.State(),
		DropoutRNG: hex.EncodeToString(rng),
		ConfigHash: t.hash,
		Tokens:     t.tokens,
		ElapsedSec: t.elapsed.Seconds(),
		Done:       t.done,
	}
	var tensors []safetensors.StreamTensor
	add := func(name string, shape []int, values []float32) {
		tensors = append(tensors, safetensors.StreamTensor{
			Name: name, DType: safetensors.F32, Shape: shape,
			WriteData: func(w io.Writer) error { return safetensors.EncodeFloat32(w, safetensors.F32, values) },
		})
	}
	for i, p := range t.params {
		st.Params = append(st.Params, p.Name)
		shape := p.Node.Shape().Clone()
		mi, vi := make([]float32, len(p.Value)), make([]float32, len(p.Value))
		// Before the first update the optimizer has no moments yet; they
		// are zero.
		if m != nil {
			mi, vi = m[i], v[i]
		}
		add(p.Name, shape, p.Value)
		add(p.Name+suffixExpAvg, shape, mi)
		add(p.Name+suffixExpAvgSq, shape, vi)
	}
	js, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	dir := filepath.Join(t.cfg.OutDir, CheckpointDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	meta := map[string]string{"format": checkpointFormat, "state": string(js)}
	if err := safetensors.WriteStreamFile(filepath.Join(dir, CheckpointFile), tensors, meta); err != nil {
		return fmt.Errorf("train: checkpoint at step %d: %w", t.step, err)
	}
	return nil
}

// paramShape is what a checkpoint must hold for one parameter.
type paramShape struct {
	name  string
	shape []int
}

// restored is a decoded and validated checkpoint.
type restored struct {
	state        checkpointState
	values, m, v [][]float32
	rngState     []byte
}

// decodeCheckpoint checks a parsed checkpoint file against the parameters a
// trainer has and the configuration hash it expects, and returns its
// contents. Errors name the file and the tensor or field at fault.
func decodeCheckpoint(f *safetensors.File, params []paramShape, wantHash string, maxSteps int) (*restored, error) {
	name := f.Path()
	if name == "" {
		name = "checkpoint"
	}
	meta := f.Metadata()
	if meta["format"] != checkpointFormat {
		return nil, fmt.Errorf("%s: not a golora training checkpoint (metadata format %q, want %q)", name, meta["format"], checkpointFormat)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(meta["state"])))
	dec.DisallowUnknownFields()
	var st checkpointState
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: metadata state: %w", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: metadata state: trailing data after the JSON object", name)
	}
	switch {
	case st.Version != checkpointVersion:
		return nil, fmt.Errorf("%s: checkpoint version %d, this golora reads version %d", name, st.Version, checkpointVersion)
	case st.ConfigHash != wantHash:
		return nil, fmt.Errorf("%s: written by a run with other settings, adapter configuration or training data (config hash %.12s…, this run %.12s…)", name, st.ConfigHash, wantHash)
	case st.Step < 0 || st.Step > maxSteps:
		return nil, fmt.Errorf("%s: step %d is outside [0, %d]", name, st.Step, maxSteps)
	case st.AdamStep != st.Step:
		return nil, fmt.Errorf("%s: optimizer step %d differs from the training step %d", name, st.AdamStep, st.Step)
	case st.Tokens < 0 || !(st.ElapsedSec >= 0 && st.ElapsedSec < maxElapsedSec):
		return nil, fmt.Errorf("%s: tokens %d and elapsed time %v s must be non-negative (and the time under %g s)", name, st.Tokens, st.ElapsedSec, maxElapsedSec)
	case st.Batcher.Epoch < 0 || st.Batcher.Row < 0:
		return nil, fmt.Errorf("%s: data position %+v is negative", name, st.Batcher)
	}
	rng, err := hex.DecodeString(st.DropoutRNG)
	if err != nil {
		return nil, fmt.Errorf("%s: dropout generator state: %w", name, err)
	}
	want := make([]string, len(params))
	for i, p := range params {
		want[i] = p.name
	}
	if !slices.Equal(st.Params, want) {
		return nil, fmt.Errorf("%s: holds parameters %q, this run trains %q", name, st.Params, want)
	}
	if n := f.Len(); n != 3*len(params) {
		return nil, fmt.Errorf("%s: %d tensors, want %d (each parameter and its two moments)", name, n, 3*len(params))
	}
	r := &restored{state: st, rngState: rng}
	for _, p := range params {
		for _, suffix := range []string{"", suffixExpAvg, suffixExpAvgSq} {
			key := p.name + suffix
			tn, ok := f.Tensor(key)
			if !ok {
				return nil, fmt.Errorf("%s: tensor %q is missing", name, key)
			}
			if tn.DType != safetensors.F32 || !slices.Equal(tn.Shape, p.shape) {
				return nil, fmt.Errorf("%s: tensor %q is %s %v, want F32 %v", name, key, tn.DType, tn.Shape, p.shape)
			}
			vals, err := tn.Float32s()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			for i, x := range vals {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) || (suffix == suffixExpAvgSq && x < 0) {
					return nil, fmt.Errorf("%s: tensor %q element %d is %v", name, key, i, x)
				}
			}
			switch suffix {
			case "":
				r.values = append(r.values, vals)
			case suffixExpAvg:
				r.m = append(r.m, vals)
			default:
				r.v = append(r.v, vals)
			}
		}
	}
	return r, nil
}

// Resume restores the state saved in CheckpointPath(OutDir) — adapter
// tensors, optimizer moments, step, data position and dropout generator —
// so that Run continues exactly as the interrupted run would have. The
// checkpoint must come from a run with the same configuration hash (same
// optimizer settings, batch shape, seed, adapter configuration, base shape
// and training data). If there is no checkpoint the error wraps
// os.ErrNotExist; on any error the Trainer is unchanged.
func (t *Trainer) Resume() error {
	if t.cfg.OutDir == "" {
		return errors.New("train: Resume: no OutDir configured")
	}
	path := CheckpointPath(t.cfg.OutDir)
	f, err := safetensors.Open(path)
	if err != nil {
		return fmt.Errorf("train: resume: %w", err)
	}
	defer f.Close()
	shapes := make([]paramShape, len(t.params))
	for i, p := range t.params {
		shapes[i] = paramShape{name: p.Name, shape: p.Node.Shape().Clone()}
	}
	r, err := decodeCheckpoint(f, shapes, t.hash, t.cfg.Steps)
	if err != nil {
		return fmt.Errorf("train: resume: %w", err)
	}
	// The generator and the data position are validated by setting them;
	// set the probe copies first so that a bad checkpoint changes nothing.
	if err := rand.NewPCG(0, 0).UnmarshalBinary(r.rngState); err != nil {
		return fmt.Errorf("train: resume %s: dropout generator state: %w", path, err)
	}
	before := t.batcher.State()
	if err := t.batcher.SetState(r.state.Batcher); err != nil {
		return fmt.Errorf("train: resume %s: %w", path, err)
	}
	if err := t.opt.SetMoments(r.state.AdamStep, r.m, r.v); err != nil {
		t.batcher.SetState(before)
		return fmt.Errorf("train: resume %s: %w", path, err)
	}
	if err := t.pcg.UnmarshalBinary(r.rngState); err != nil {
		return fmt.Errorf("train: resume %s: dropout generator state: %w", path, err)
	}
	for i, p := range t.params {
		copy(p.Value, r.values[i])
	}
	t.step = r.state.Step
	t.done = r.state.Done
	t.tokens = r.state.Tokens
	t.elapsed = time.Duration(r.state.ElapsedSec * float64(time.Second))
	return nil
}

// maxElapsedSec bounds the training time a checkpoint may claim, so that
// converting it to a time.Duration cannot overflow (about 31 years).
const maxElapsedSec = 1e9
