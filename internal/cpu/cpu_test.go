package cpu

import (
	"os"
	"testing"
)

func TestCapped(t *testing.T) {
	for _, c := range []struct {
		supported Level
		env       string
		want      Level
	}{
		{AVX512, "", AVX512},
		{AVX512, "avx2", AVX2},
		{AVX512, "generic", Generic},
		{AVX2, "avx512", AVX2}, // never raised above the CPU
		{AVX512, "sse9", AVX512},
	} {
		if got := capped(c.supported, c.env); got != c.want {
			t.Errorf("capped(%v, %q) = %v, want %v", c.supported, c.env, got, c.want)
		}
	}
}

func TestEnvNamesAKnownLevel(t *testing.T) {
	// CI sets GOLORA_KERNELS to run each code path; a misspelt value would
	// silently test the default path instead.
	env := os.Getenv(EnvVar)
	if env == "" {
		t.Skip(EnvVar + " is not set")
	}
	want, err := ParseLevel(env)
	if err != nil {
		t.Fatal(err)
	}
	if want <= Supported() && Best() != want {
		t.Errorf("%s=%s but Best() = %v", EnvVar, env, Best())
	}
}

func TestParseLevelRoundTrip(t *testing.T) {
	for l := Generic; l <= AVX512; l++ {
		got, err := ParseLevel(l.String())
		if err != nil || got != l {
			t.Errorf("ParseLevel(%q) = %v, %v", l.String(), got, err)
		}
	}
	if _, err := ParseLevel("avx1024"); err == nil {
		t.Error("ParseLevel accepted avx1024")
	}
}
