package infer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

// logitsOf returns logits whose softmax is probs.
func logitsOf(probs []float64) []float32 {
	l := make([]float32, len(probs))
	for i, p := range probs {
		l[i] = float32(math.Log(p))
	}
	return l
}

func TestSamplerGreedy(t *testing.T) {
	s, err := NewSampler(SamplerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		logits []float32
		want   int
	}{
		{[]float32{0, 3, 1}, 1},
		{[]float32{-5, -1, -1, -2}, 1}, // ties go to the lowest id
		{[]float32{7}, 0},
		{[]float32{float32(math.Inf(-1)), 0, -1}, 1},
	} {
		if got, err := s.Sample(tc.logits); err != nil || got != tc.want {
			t.Errorf("Sample(%v) = %d, %v; want %d", tc.logits, got, err, tc.want)
		}
	}
}

func TestNucleusHandMade(t *testing.T) {
	// Probabilities in a shuffled order; sorted: 3 (0.4), 1 (0.25), 4 (0.2),
	// 0 (0.1), 2 (0.05). Cumulative: 0.4, 0.65, 0.85, 0.95, 1.
	probs := []float64{0.1, 0.25, 0.05, 0.4, 0.2}
	s := &Sampler{}
	for _, tc := range []struct {
		p    float64
		want string
	}{
		{0.3, "[3]"},
		{0.4 - 1e-9, "[3]"},
		{0.5, "[3 1]"},
		{0.65 - 1e-9, "[3 1]"},
		{0.7, "[3 1 4]"},
		{0.9, "[3 1 4 0]"},
		{0.99, "[3 1 4 0 2]"},
	} {
		var ids []int
		for _, c := range s.nucleus(probs, 1, tc.p) {
			ids = append(ids, c.id)
		}
		if got := fmt.Sprint(ids); got != tc.want {
			t.Errorf("top-p %v: nucleus %s, want %s", tc.p, got, tc.want)
		}
	}
	// Unnormalized probabilities: the threshold is p·sum.
	scaled := []float64{1, 2.5, 0.5, 4, 2}
	if got := len(s.nucleus(scaled, 10, 0.7)); got != 3 {
		t.Errorf("unnormalized: nucleus of %d tokens, want 3", got)
	}
}

// TestNucleusMatchesFullSort checks the pre-filtered, partially ordered
// nucleus against sorting every token, on distributions where the filter
// drops many tokens, none, or all (p below 1/n), some of a vocabulary's
// size.
func TestNucleusMatchesFullSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	s := &Sampler{}
	for trial := range 300 {
		n := 1 + rng.IntN(300)
		if trial%20 >= 17 {
			n = 32000
		}
		probs := make([]float64, n)
		var sum float64
		for i := range probs {
			switch trial % 3 {
			case 0: // peaked, long tail
				probs[i] = math.Exp(rng.NormFloat64() * 4)
			case 1: // flat
				probs[i] = 1 + rng.Float64()*0.01
			default: // many exact ties
				probs[i] = float64(1 + rng.IntN(3))
			}
			sum += probs[i]
		}
		p := rng.Float64()
		ids := make([]int, n)
		for i := range ids {
			ids[i] = i
		}
		sort.SliceStable(ids, func(a, b int) bool { return probs[ids[a]] > probs[ids[b]] })
		var want []int
		var cum float64
		for _, id := range ids {
			want = append(want, id)
			if cum += probs[id]; cum >= p*sum {
				break
			}
		}
		var got []int
		for _, c := range s.nucleus(probs, sum, p) {
			got = append(got, c.id)
			if c.p != probs[c.id] {
				t.Fatalf("trial %d: token %d carries %v, its probability is %v", trial, c.id, c.p, probs[c.id])
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d (n %d, p %v): nucleus %v, want %v", trial, n, p, got, want)
		}
	}
}

// sampleFrequencies draws n tokens and returns how often each came.
func sampleFrequencies(t *testing.T, opts SamplerOptions, logits []float32, n int) []float64 {
	t.Helper()
	s, err := NewSampler(opts)
	if err != nil {
		t.Fatal(err)
	}
	freq := make([]float64, len(logits))
	for range n {
		id, err := s.Sample(logits)
		if err != nil {
			t.Fatal(err)
		}
		freq[id]++
	}
	for i := range freq {
		freq[i] /= float64(n)
	}
	return freq
}

func TestSamplerFrequencies(t *testing.T) {
	probs := []float64{0.1, 0.25, 0.05, 0.4, 0.2}
	logits := logitsOf(probs)
	const n = 40000
	// With n draws a frequency's standard deviation is at most 0.0025, so
	// 0.012 is about 5 standard deviations; the seeds are fixed anyway.
	const tol = 0.012
	for _, tc := range []struct {
		name string
		opts SamplerOptions
		want []float64
	}{
		{"T=1", SamplerOptions{Temperature: 1}, probs},
		// p^(1/T) renormalized: T = 0.5 squares the probabilities, whose
		// squares sum to 0.275.
		{"T=0.5", SamplerOptions{Temperature: 0.5}, []float64{0.01 / 0.275, 0.0625 / 0.275, 0.0025 / 0.275, 0.16 / 0.275, 0.04 / 0.275}},
		// The nucleus for 0.7 is {3, 1, 4}, renormalized by 0.85.
		{"T=1,top-p=0.7", SamplerOptions{Temperature: 1, TopP: 0.7}, []float64{0, 0.25 / 0.85, 0, 0.4 / 0.85, 0.2 / 0.85}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Rand = rand.New(rand.NewPCG(11, 12))
			got := sampleFrequencies(t, tc.opts, logits, n)
			for i := range got {
				if math.Abs(got[i]-tc.want[i]) > tol || (tc.want[i] == 0 && got[i] != 0) {
					t.Errorf("token %d drawn with frequency %.4f, want %.4f", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestSamplerSeeds(t *testing.T) {
	logits := logitsOf([]float64{0.1, 0.25, 0.05, 0.4, 0.2})
	draw := func(seed uint64) string {
		s, err := NewSampler(SamplerOptions{Temperature: 1, TopP: 0.95, Rand: rand.New(rand.NewPCG(seed, 0))})
		if err != nil {
			t.Fatal(err)
		}
		var ids []int
		for range 30 {
			id, err := s.Sample(logits)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return fmt.Sprint(ids)
	}
	if a, b := draw(1), draw(1); a != b {
		t.Errorf("seed 1 drew %s and %s", a, b)
	}
	if a, b := draw(1), draw(2); a == b {
		t.Errorf("seeds 1 and 2 both drew %s", a)
	}
}

func TestSamplerRejectsBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct {
		opts SamplerOptions
		want string
	}{
		{SamplerOptions{Temperature: -1}, "temperature -1"},
		{SamplerOptions{Temperature: math.NaN(), Rand: rng}, "temperature NaN"},
		{SamplerOptions{Temperature: 1, TopP: 1.5, Rand: rng}, "top-p 1.5"},
		{SamplerOptions{Temperature: 1}, "needs a random source"},
	} {
		if _, err := NewSampler(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewSampler(%+v): err = %v, want one containing %q", tc.opts, err, tc.want)
		}
	}
	for _, temperature := range []float64{0, 1} {
		s, err := NewSampler(SamplerOptions{Temperature: temperature, Rand: rng})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			logits []float32
			want   string
		}{
			{nil, "no logits"},
			{[]float32{0, float32(math.NaN())}, "logit 1 is NaN"},
			{[]float32{0, float32(math.Inf(1))}, "largest logit (token 1) is +Inf"},
			{[]float32{float32(math.Inf(-1))}, "is -Inf"},
		} {
			if _, err := s.Sample(tc.logits); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("T=%v, Sample(%v): err = %v, want one containing %q", temperature, tc.logits, err, tc.want)
			}
		}
	}
}

func TestSamplerDoesNotAllocate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	logits := genRandomSlice(rng, 32000, 3)
	s, err := NewSampler(SamplerOptions{Temperature: 0.8, TopP: 0.9, Rand: rng})
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := s.Sample(logits); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Sample allocates %v times per token after the first, want 0", allocs)
	}
}

// TestSamplerReset: a Sampler given new options by Reset draws what a new
// one with those options draws, without growing its scratch again, and
// keeps its options when Reset refuses bad ones.
func TestSamplerReset(t *testing.T) {
	logits := genRandomSlice(rand.New(rand.NewPCG(3, 4)), 32000, 3)
	opts := func(seed uint64) SamplerOptions {
		return SamplerOptions{Temperature: 0.8, TopP: 0.9, Rand: rand.New(rand.NewPCG(seed, 0))}
	}
	draw := func(s *Sampler) []int {
		ids := make([]int, 0, 10)
		for range 10 {
			id, err := s.Sample(logits)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return ids
	}
	fresh, err := NewSampler(opts(2))
	if err != nil {
		t.Fatal(err)
	}
	want := draw(fresh)
	reused, err := NewSampler(opts(1))
	if err != nil {
		t.Fatal(err)
	}
	draw(reused)
	var got []int
	allocs := testing.AllocsPerRun(1, func() {
		if err := reused.Reset(opts(2)); err != nil {
			t.Fatal(err)
		}
		got = draw(reused)
	})
	if !slices.Equal(got, want) {
		t.Errorf("after Reset drew %v, a new Sampler %v", got, want)
	}
	// opts allocates the random source (2 objects), draw its ids (1); the
	// scratch, grown again, would be 2 more.
	if allocs > 3 {
		t.Errorf("Reset and 10 draws allocate %v times: the scratch was not kept", allocs)
	}
	if err := reused.Reset(SamplerOptions{Temperature: -1}); err == nil {
		t.Fatal("Reset(temperature -1): no error")
	}
	if reused.opts.Temperature != 0.8 {
		t.Errorf("a refused Reset changed the options to %+v", reused.opts)
	}
}
