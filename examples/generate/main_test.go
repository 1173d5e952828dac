package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestGenerate: the program continues the prompt as llama2.c does for this
// model (the text of model/infer's ExampleGenerate).
func TestGenerate(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, "Once upon a time", 20); err != nil {
		t.Fatal(err)
	}
	const want = "Once upon a time, there was a little girl named Lily."
	if !strings.HasPrefix(out.String(), want) {
		t.Errorf("output %q, want it to start with %q", out.String(), want)
	}
}

// TestNoAutodiffDependency: a program that loads a model and generates text
// links no gorgonia module (nor the training graph that uses it).
func TestNoAutodiffDependency(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !strings.Contains(string(out), "github.com/golora/golora/model/infer") {
		t.Fatalf("go list -deps listed %d packages without model/infer: %s", len(deps), out)
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "gorgonia.org/") || d == "github.com/golora/golora/model/graph" {
			t.Errorf("the generate program depends on %s", d)
		}
	}
	t.Logf("%d packages, none from gorgonia.org", len(deps))
}
