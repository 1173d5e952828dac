package model

import "errors"

// ErrNoTokenizer is wrapped by the error of Load for a checkpoint that has
// no tokenizer and no LoadOptions.TokenizerPath (see
// LoadOptions.TokenizerOptional).
var ErrNoTokenizer = errors.New("no tokenizer")
