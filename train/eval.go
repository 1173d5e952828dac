package train

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/lora/loragraph"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/graph"
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
	b, err := newBatcher(examples, batchOptions{Size: batchSize, SeqLen: seqLen, Pad: pad})
	if err != nil {
		return EvalResult{}, err
	}
	opts := graph.Options{Batch: batchSize, SeqLen: seqLen}
	if adapter != nil {
		if err := adapter.Check(base); err != nil {
			return EvalResult{}, fmt.Errorf("train: Evaluate: %w", err)
		}
		ga, err := loragraph.New(adapter)
		if err != nil {
			return EvalResult{}, fmt.Errorf("train: Evaluate: %w", err)
		}
		ga.DisableDropout()
		opts.Adapter = ga
	}
	g, err := graph.New(base, opts)
	if err != nil {
		return EvalResult{}, fmt.Errorf("train: Evaluate: %w", err)
	}
	defer g.Close()
	loss, n, err := meanLoss(ctx, g, b.Batches())
	if err != nil {
		return EvalResult{}, fmt.Errorf("train: Evaluate: %w", err)
	}
	if n == 0 {
		return EvalResult{}, errors.New("train: Evaluate: no target tokens in the examples")
	}
	return EvalResult{Loss: loss, Perplexity: math.Exp(loss), Tokens: n}, nil
}

// meanLoss runs g forward on every batch and returns the mean loss per
// target token and the number of target tokens (0 when none has a target).
// The graph's loss is already a mean over each batch's targets, so batches
// are weighted by their target counts.
func meanLoss(ctx context.Context, g *graph.Graph, batches []*batch) (loss float64, tokens int, err error) {
	var sum float64
	for i, b := range batches {
		if err := g.SetBatch(b.Inputs, b.Targets); err != nil {
			return 0, 0, fmt.Errorf("batch %d: %w", i+1, err)
		}
		l, err := g.Forward(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("batch %d: %w", i+1, err)
		}
		k := b.Tokens()
		sum += float64(l) * float64(k)
		tokens += k
	}
	if tokens == 0 {
		return 0, 0, nil
	}
	return sum / float64(tokens), tokens, nil
}
