package model

import (
	"context"
	"os"
	"testing"

	"github.com/golora/golora/nf4"
)

func TestZZLocalLoad(t *testing.T) {
	p := os.Getenv("ZZLOAD")
	if p == "" {
		t.Skip()
	}
	if _, err := Load(context.Background(), p, LoadOptions{WeightsOnly: true, Quantizer: nf4.Quantizer(nf4.Options{}), Requantize: true}); err != nil {
		t.Fatal(err)
	}
}
