package model

// Test helpers for the external tests of this directory (logits_test.go),
// which run models through model/infer, a package that imports model.
var (
	HFTestConfig = hfTestConfig
	HFNF4Weights = hfNF4Weights
	HFRoundBF16  = hfRoundBF16
)
