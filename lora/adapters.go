package lora

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/golora/golora/model"
)

// Set holds several named adapters for one base model, at most one of
// them active, like the adapters of a PEFT model. With none active the model
// is the plain base. Its methods are safe for concurrent use.
type Set struct {
	base *model.Weights

	mu     sync.RWMutex
	byName map[string]*Adapter
	names  []string // in order of Add
	active string   // "" when disabled
}

// NewSet returns an empty set of adapters for base, with none active.
func NewSet(base *model.Weights) *Set {
	return &Set{base: base, byName: make(map[string]*Adapter)}
}

// Base returns the base model the adapters belong to.
func (s *Set) Base() *model.Weights { return s.base }

// Add adds a under name after checking that it fits the base (Check). The
// first adapter added becomes active, as in PEFT; later ones do not. It is an
// error if name is empty or already used.
func (s *Set) Add(name string, a *Adapter) error {
	if name == "" {
		return errors.New("lora: Set.Add: empty adapter name")
	}
	if a == nil {
		return fmt.Errorf("lora: Set.Add %q: nil adapter", name)
	}
	if err := a.Check(s.base); err != nil {
		return fmt.Errorf("lora: Set.Add %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byName[name]; ok {
		return fmt.Errorf("lora: Set.Add: an adapter named %q already exists", name)
	}
	s.byName[name] = a
	s.names = append(s.names, name)
	if len(s.names) == 1 {
		s.active = name
	}
	return nil
}

// SetActive makes the named adapter the active one.
func (s *Set) SetActive(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byName[name]; !ok {
		return fmt.Errorf("lora: Set.SetActive: no adapter named %q (have %q)", name, s.names)
	}
	s.active = name
	return nil
}

// Disable deactivates every adapter: the model computes the plain base.
func (s *Set) Disable() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active = ""
}

// Delete removes the named adapter. Deleting the active adapter leaves none
// active. It is an error to delete an adapter that is merged into the base
// (Unmerge it first) or one that does not exist.
func (s *Set) Delete(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("lora: Set.Delete: no adapter named %q", name)
	}
	if a.Merged(s.base) {
		return fmt.Errorf("lora: Set.Delete: adapter %q is merged into the base model; Unmerge it first", name)
	}
	delete(s.byName, name)
	s.names = slices.DeleteFunc(s.names, func(n string) bool { return n == name })
	if s.active == name {
		s.active = ""
	}
	return nil
}

// Active returns the active adapter and its name, or "" and nil when adapters
// are disabled.
func (s *Set) Active() (string, *Adapter) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.active == "" {
		return "", nil
	}
	return s.active, s.byName[s.active]
}

// Get returns the named adapter.
func (s *Set) Get(name string) (*Adapter, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.byName[name]
	return a, ok
}

// Names returns the adapter names in the order they were added.
func (s *Set) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.names)
}

// AddDelta adds the active adapter's term for lin to y (see
// Adapter.AddDelta). It does nothing when adapters are disabled or when the
// active adapter is merged into the base, whose weights then already hold it.
func (s *Set) AddDelta(lin *model.Linear, y, x []float32, n int) error {
	_, a := s.Active()
	if a == nil || a.Merged(s.base) {
		return nil
	}
	return a.AddDelta(lin, y, x, n)
}
