package library_test

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEShowsExample: the README's library snippet is the body of
// Example, from model.Default to the generation, unindented, so that the
// code the README shows is the code go test runs.
func TestREADMEShowsExample(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	start := strings.Index(s, "\tbase, err := model.Default()")
	end := strings.Index(s, "\tfmt.Println(\"adapters:\"")
	if start < 0 || end < start {
		t.Fatal("example_test.go: the snippet's first or last line is not where this test looks")
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(s[start:end], "\n"), "\n") {
		lines = append(lines, strings.TrimPrefix(l, "\t"))
	}
	body := "```go\n" + strings.Join(lines, "\n") + "\n```"
	if !strings.Contains(string(readme), body) {
		t.Errorf("README.md does not show Example's code; want this block in it:\n%s", body)
	}
}
