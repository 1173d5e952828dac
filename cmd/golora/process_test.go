//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
)

// TestMain lets the test binary run as golora in a child process, so that
// tests can signal and kill a real process without building another binary.
func TestMain(m *testing.M) {
	if args := os.Getenv("GOLORA_TEST_CHILD_ARGS"); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			panic(err)
		}
		// A file size limit makes writes fail as on a full disk (Go
		// ignores the SIGXFSZ that comes with it).
		if limit, err := strconv.ParseUint(os.Getenv("GOLORA_TEST_FSIZE"), 10, 64); err == nil {
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
				panic(err)
			}
		}
		os.Exit(runWithSignals(argv, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// child is a golora process started by startChild.
type child struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

// startChild starts golora with args in a child process.
func startChild(t *testing.T, args ...string) *child {
	return startChildEnv(t, nil, args...)
}

// startChildEnv is startChild with more environment variables.
func startChildEnv(t *testing.T, env []string, args ...string) *child {
	t.Helper()
	js, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: exec.Command(os.Args[0])}
	c.cmd.Env = append(append(os.Environ(), env...), "GOLORA_TEST_CHILD_ARGS="+string(js))
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// wait waits for the child and returns its exit code (-1 if killed).
func (c *child) wait() int {
	c.cmd.Wait()
	return c.cmd.ProcessState.ExitCode()
}
