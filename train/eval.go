package train

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
)

// EvalResult is the mean next-token loss over a set of examples.
type EvalResult struct {
	Loss       float64 // mean cross-entropy per target token, in nats
	Perplexity float64 // exp(Loss)
	Tokens     int     // target tokens counted
}

// Evaluate computes the mean next-token loss of base, with adapter applied
// when it is not nil, over every example, in batches of batchSize rows of
// seqLen positions (examples longer than seqLen+1 tokens are truncated).
// pad is the input id of padding positions. Dropout is off.
func Evaluate(ctx context.Context, base *model.Weights, adapter *lora.Adapter, examples []Example, batchSize, seqLen, pad int) (EvalResult, error) {
	if base == nil {
		return EvalResult{}, errors.New("train: Evaluate: nil base")
	}
	if err := checkExamples("evaluation", examples, base.Config.VocabSize); err != nil {
		return EvalResult{}, err
	}
	b, err := NewBatcher(examples, BatchOptions{Size: batchSize, SeqLen: seqLen, Pad: pad})
	if err != nil {
		return EvalResult{}, err
	}
	opts := model.GraphOptions{Batch: batchSize, SeqLen: seqLen}
	if adapter != nil {
		if err := adapter.Check(base); err != nil {
			return EvalResult{}, fmt.Errorf("train: Evaluate: %w", err)
		}
		ga, err := lora.NewGraphAdapter(adapter)
		if err != nil {
			return EvalResult{}, fmt.Errorf("train: Evaluate: %w", err)
		}
		ga.DisableDropout()
		opts.Adapter = ga
	}
	g, err := model.NewGraph(base, opts)
	if err != nil {
		return EvalResult{}, fmt.Errorf("train: Evaluate: %w", err)
	}
	defer g.Close()
	var sum float64
	var n int
	for i, batch := range b.Batches() {
		if err := g.SetBatch(batch.Inputs, batch.Targets); err != nil {
			return EvalResult{}, fmt.Errorf("train: Evaluate: batch %d: %w", i+1, err)
		}
		loss, err := g.Forward(ctx)
		if err != nil {
			return EvalResult{}, fmt.Errorf("train: Evaluate: batch %d: %w", i+1, err)
		}
		k := batch.Tokens()
		sum += float64(loss) * float64(k)
		n += k
	}
	if n == 0 {
		return EvalResult{}, errors.New("train: Evaluate: no target tokens in the examples")
	}
	loss := sum / float64(n)
	return EvalResult{Loss: loss, Perplexity: math.Exp(loss), Tokens: n}, nil
}
