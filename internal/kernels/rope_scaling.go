package kernels

import (
	"fmt"
	"math"
)

// RopeScaling names a rescaling of the rotary frequencies, as transformers'
// rope_scaling (rope_parameters) gives it. The zero value is no rescaling.
type RopeScaling struct {
	// Type is "" or "default" (none), "linear" (every frequency divided by
	// Factor), "llama3" (Llama 3.1's piecewise rescaling) or "longrope"
	// (Phi-3's: per-frequency divisors, which the caller holds, and cosines
	// and sines scaled by AttentionFactor).
	Type string
	// Factor divides the frequencies ("linear") or the low ones ("llama3").
	Factor float64
	// LowFreqFactor, HighFreqFactor and OriginalMaxPos are the llama3
	// parameters low_freq_factor, high_freq_factor and
	// original_max_position_embeddings.
	LowFreqFactor, HighFreqFactor float64
	OriginalMaxPos                int
	// AttentionFactor multiplies the cosines and sines ("longrope"); 0
	// means 1.
	AttentionFactor float64
}

// AngleScale returns the factor the cosines and sines of the rotation are
// multiplied by: AttentionFactor, or 1.
func (s RopeScaling) AngleScale() float32 {
	if s.AttentionFactor == 0 {
		return 1
	}
	return float32(s.AttentionFactor)
}

// Check reports a rescaling of an unknown type or with parameters the
// formula cannot use.
func (s RopeScaling) Check() error {
	switch s.Type {
	case "", "default":
		return nil
	case "linear":
		if !(s.Factor > 0) || math.IsInf(s.Factor, 0) {
			return fmt.Errorf("rope scaling linear: factor %v must be positive and finite", s.Factor)
		}
		return nil
	case "llama3":
		switch {
		case !(s.Factor > 0) || math.IsInf(s.Factor, 0):
			return fmt.Errorf("rope scaling llama3: factor %v must be positive and finite", s.Factor)
		case !(s.LowFreqFactor > 0) || !(s.HighFreqFactor > s.LowFreqFactor) || math.IsInf(s.HighFreqFactor, 0):
			return fmt.Errorf("rope scaling llama3: low_freq_factor %v and high_freq_factor %v must be positive, finite and increasing",
				s.LowFreqFactor, s.HighFreqFactor)
		case s.OriginalMaxPos <= 0:
			return fmt.Errorf("rope scaling llama3: original_max_position_embeddings %d must be positive", s.OriginalMaxPos)
		}
		return nil
	case "longrope":
		switch {
		case !(s.AttentionFactor > 0) || math.IsInf(s.AttentionFactor, 0):
			return fmt.Errorf("rope scaling longrope: attention factor %v must be positive and finite", s.AttentionFactor)
		case s.OriginalMaxPos <= 0:
			return fmt.Errorf("rope scaling longrope: original_max_position_embeddings %d must be positive", s.OriginalMaxPos)
		}
		return nil
	}
	return fmt.Errorf("rope scaling type %q is not supported (only default, linear, llama3 and longrope)", s.Type)
}

// ScaledRopeInvFreq returns the rotary frequencies of the rotaryDim/2 pairs
// of a head, theta^(−2i/rotaryDim), rescaled as s says. For "llama3",
// frequencies whose wavelength 2π/f exceeds OriginalMaxPos/LowFreqFactor
// are divided by Factor, those whose wavelength is below
// OriginalMaxPos/HighFreqFactor are kept, and those between are blended
// linearly in OriginalMaxPos/wavelength (transformers'
// _compute_llama3_parameters). s must pass Check.
func ScaledRopeInvFreq(rotaryDim int, theta float64, s RopeScaling) []float64 {
	f := RopeInvFreq(rotaryDim, theta)
	switch s.Type {
	case "linear":
		for i := range f {
			f[i] /= s.Factor
		}
	case "llama3":
		old := float64(s.OriginalMaxPos)
		lowWavelen, highWavelen := old/s.LowFreqFactor, old/s.HighFreqFactor
		for i, inv := range f {
			wavelen := 2 * math.Pi / inv
			switch {
			case wavelen < highWavelen:
			case wavelen > lowWavelen:
				f[i] = inv / s.Factor
			default:
				smooth := (old/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
				f[i] = (1-smooth)*inv/s.Factor + smooth*inv
			}
		}
	}
	return f
}
