package graph

import (
	"fmt"
	"slices"
	"strings"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// machine runs a subgraph of a Graph's expression graph, in the order
// gorgonia's TapeMachine would, but frees what the run no longer needs:
// once the last operator reading a value has run, the value is dropped and
// its buffer, if the arena handed it out, goes back to the arena for the
// operators that follow. gorgonia's TapeMachine keeps every value of a run
// until the next Reset, so a training step held all its activations and all
// its gradients at once; here a backward pass reuses the buffers of the
// gradients it has consumed, and the forward values only the backward pass
// reads stay.
//
// A binary element-wise operator (an adapter's term added to a frozen
// product, a residual addition, a sum of gradients) whose first operand is
// read for the last time writes into that operand, as the TapeMachine does,
// instead of allocating.
//
// The values of the roots stay bound to their nodes after the run. The
// gradients of the nodes passed as wrt are summed over runs into buffers of
// the machine, bound to the gradient nodes, which is what their Grad
// returns.
type machine struct {
	steps []machineStep
	// sources are the slots of input and constant nodes, read from the
	// nodes at the start of each run.
	sources []machineSource
	// reads is the number of times each slot is read by a step, plus one
	// for the slots kept to the end of the run.
	reads []int
	slots int
	arena *graphArena

	// Per-run state, kept between runs to avoid allocating.
	values []gorgonia.Value
	left   []int
	live   map[*float32]int
	// pinned holds the buffers of the sources, which no step may write
	// into: the inputs must read the same in the next run.
	pinned map[*float32]bool
}

type machineSource struct {
	node *gorgonia.Node
	slot int
}

type machineStep struct {
	node *gorgonia.Node
	op   gorgonia.Op
	args []int
	slot int
	// inPlace: the step may write into its first operand when that is read
	// for the last time (a same-shape binary operator); commutes: into its
	// second operand too (an addition, whose float32 result does not depend
	// on the order of its operands).
	inPlace, commutes bool
	// bind: the value is bound to the node after the step (a root).
	bind bool
	// acc, when not nil, sums the step's values over runs (the gradient
	// of a node passed as wrt); it is bound to the node instead.
	acc *tensor.Dense
}

// newMachine plans the run of the subgraph of g that computes roots. The
// roots that are gradient nodes of wrt (as Differentiate returns them) sum
// over runs.
func newMachine(g *gorgonia.ExprGraph, arena *graphArena, roots gorgonia.Nodes, wrt gorgonia.Nodes) (*machine, error) {
	sub := g.SubgraphRoots(roots...)
	sorted, err := gorgonia.Sort(sub)
	if err != nil {
		return nil, err
	}
	slices.Reverse(sorted)
	m := &machine{arena: arena, slots: len(sorted), live: map[*float32]int{}, pinned: map[*float32]bool{}}
	slot := make(map[*gorgonia.Node]int, len(sorted))
	for i, n := range sorted {
		slot[n] = i
	}
	m.reads = make([]int, len(sorted))
	accOf := map[*gorgonia.Node]bool{}
	for _, w := range wrt {
		if d := w.Deriv(); d != nil {
			accOf[d] = true
		}
	}
	kept := map[*gorgonia.Node]bool{}
	for _, r := range roots {
		kept[r] = true
	}
	for i, n := range sorted {
		op := n.Op()
		if _, isConst := op.(interface{ Value() gorgonia.Value }); op == nil || isConst {
			m.sources = append(m.sources, machineSource{node: n, slot: i})
			continue
		}
		st := machineStep{node: n, op: op, slot: i, bind: kept[n]}
		for children := g.From(n.ID()); children.Next(); {
			c := children.Node()
			cn, ok := c.(*gorgonia.Node)
			if !ok {
				return nil, fmt.Errorf("graph: node %v has a child of type %T", n, c)
			}
			j, ok := slot[cn]
			if !ok {
				return nil, fmt.Errorf("graph: node %v reads %v, which is not in its subgraph", n, cn)
			}
			st.args = append(st.args, j)
			m.reads[j]++
		}
		if len(st.args) == 2 {
			a, b := sorted[st.args[0]], sorted[st.args[1]]
			_, unsafe := op.(gorgonia.UnsafeDoer)
			st.inPlace = unsafe && a.Shape().Eq(n.Shape()) && b.Shape().Eq(n.Shape()) && a.Dtype() == n.Dtype()
			// gorgonia's element-wise addition prints as "+" and whether
			// it returns the same type.
			_, ours := op.(addOp)
			sum := ours || strings.HasPrefix(fmt.Sprint(op), "+ ")
			st.commutes = st.inPlace && sum
			// gorgonia's own same-shape float32 additions (the sums of
			// gradients) run as addOp: in parallel, and with the same
			// result, as float32 addition is the same in any loop.
			if st.commutes && !ours && n.Dtype() == tensor.Float32 && n.Shape().Dims() > 0 {
				st.op = addOp{arena: arena}
			}
		}
		if accOf[n] {
			st.acc = tensor.New(tensor.WithShape(n.Shape()...), tensor.Of(n.Dtype()))
			st.bind = false
		}
		if kept[n] {
			m.reads[i]++
		}
		m.steps = append(m.steps, st)
	}
	m.values = make([]gorgonia.Value, m.slots)
	m.left = make([]int, m.slots)
	return m, nil
}

// valuePointer returns the first element of a float32 tensor value, the
// identity of its buffer, or nil.
func valuePointer(v gorgonia.Value) *float32 {
	d, ok := v.(*tensor.Dense)
	if !ok || d.Dtype() != tensor.Float32 {
		return nil
	}
	if f := d.Float32s(); len(f) > 0 {
		return &f[0]
	}
	return nil
}

// run runs the plan once. The arena must have been reset.
func (m *machine) run() error {
	clear(m.values)
	clear(m.live)
	clear(m.pinned)
	copy(m.left, m.reads)
	defer clear(m.values)
	for _, s := range m.sources {
		m.values[s.slot] = s.node.Value()
		if m.values[s.slot] == nil {
			return fmt.Errorf("graph: node %v has no value", s.node)
		}
		if p := valuePointer(m.values[s.slot]); p != nil {
			m.pinned[p] = true
		}
		m.hold(s.slot)
	}
	in := make([]gorgonia.Value, 0, 4)
	for i := range m.steps {
		st := &m.steps[i]
		in = in[:0]
		for _, a := range st.args {
			in = append(in, m.values[a])
		}
		var v gorgonia.Value
		var err error
		switch {
		case st.inPlace && m.overwritable(st, 0):
			v, err = st.op.(gorgonia.UnsafeDoer).UnsafeDo(in...)
		case st.commutes && m.overwritable(st, 1):
			v, err = st.op.(gorgonia.UnsafeDoer).UnsafeDo(in[1], in[0])
		default:
			v, err = st.op.Do(in...)
		}
		if err != nil {
			return fmt.Errorf("graph: %v: %w", st.op, err)
		}
		m.values[st.slot] = v
		m.hold(st.slot)
		switch {
		case st.acc != nil:
			if err := accumulate(st.acc, v); err != nil {
				return fmt.Errorf("graph: gradient %v: %w", st.node, err)
			}
			if err := gorgonia.UnsafeLet(st.node, st.acc); err != nil {
				return fmt.Errorf("graph: gradient %v: %w", st.node, err)
			}
		case st.bind:
			if err := gorgonia.UnsafeLet(st.node, v); err != nil {
				return fmt.Errorf("graph: %v: %w", st.node, err)
			}
		}
		for _, a := range st.args {
			m.read(a)
		}
		if m.left[st.slot] == 0 {
			m.drop(st.slot)
		}
	}
	return nil
}

// hold counts the value of slot as a user of its buffer.
func (m *machine) hold(slot int) {
	if p := valuePointer(m.values[slot]); p != nil {
		m.live[p]++
	}
}

// overwritable reports whether binary step st may write into its operand
// i: this is the operand's last read, the other operand is another value,
// and no other live value, nor an input, shares its buffer.
func (m *machine) overwritable(st *machineStep, i int) bool {
	a, b := st.args[i], st.args[1-i]
	if a == b || m.left[a] != 1 {
		return false
	}
	p := valuePointer(m.values[a])
	return p != nil && p != valuePointer(m.values[b]) && m.live[p] == 1 && !m.pinned[p]
}

// read counts one read of slot and drops its value after the last.
func (m *machine) read(slot int) {
	m.left[slot]--
	if m.left[slot] == 0 {
		m.drop(slot)
	}
}

// drop forgets the value of slot and gives its buffer back to the arena
// when no live value shares it.
func (m *machine) drop(slot int) {
	p := valuePointer(m.values[slot])
	m.values[slot] = nil
	if p == nil {
		return
	}
	m.live[p]--
	if m.live[p] == 0 {
		delete(m.live, p)
		if !m.pinned[p] {
			m.arena.release(p)
		}
	}
}

// accumulate adds v to acc, element-wise.
func accumulate(acc *tensor.Dense, v gorgonia.Value) error {
	d, ok := v.(*tensor.Dense)
	if !ok || !d.Shape().Eq(acc.Shape()) || d.Dtype() != acc.Dtype() {
		return fmt.Errorf("value %T %v does not match the gradient's shape %v", v, v.Shape(), acc.Shape())
	}
	if d.RequiresIterator() {
		d = d.Materialize().(*tensor.Dense)
	}
	switch acc.Dtype() {
	case tensor.Float32:
		addInPlace(acc.Float32s(), d.Float32s())
	case tensor.Float64:
		dst, src := acc.Float64s(), d.Float64s()
		for i := range dst {
			dst[i] += src[i]
		}
	default:
		return fmt.Errorf("gradient of dtype %v", acc.Dtype())
	}
	return nil
}
