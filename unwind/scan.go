package unwind

import "github.com/go-delve/delve/pkg/dwarf/frame"

// rowStarts lists the addresses at which an FDE's rule may change: its
// start and every advance. It only steps over the CFA opcodes (their
// meaning is delve's to evaluate); ok is false on an opcode it does not
// know the length of, or on a truncated program.
func rowStarts(fde *frame.FrameDescriptionEntry) (starts []uint64, ok bool) {
	loc := fde.Begin()
	caf := fde.CIE.CodeAlignmentFactor
	starts = []uint64{loc}
	b := fde.Instructions
	uleb := func() bool {
		for len(b) > 0 {
			c := b[0]
			b = b[1:]
			if c&0x80 == 0 {
				return true
			}
		}
		return false
	}
	fixed := func(n int) (uint64, bool) {
		if len(b) < n {
			return 0, false
		}
		var v uint64
		for i := n - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		b = b[n:]
		return v, true
	}
	block := func() bool {
		var n, shift uint64
		for {
			if len(b) == 0 || shift > 56 {
				return false
			}
			c := b[0]
			b = b[1:]
			n |= uint64(c&0x7f) << shift
			shift += 7
			if c&0x80 == 0 {
				break
			}
		}
		if uint64(len(b)) < n {
			return false
		}
		b = b[n:]
		return true
	}
	advance := func(delta uint64) {
		loc += delta * caf
		if loc != starts[len(starts)-1] {
			starts = append(starts, loc)
		}
	}
	for len(b) > 0 {
		op := b[0]
		b = b[1:]
		switch op >> 6 {
		case 1: // DW_CFA_advance_loc
			advance(uint64(op & 0x3f))
			continue
		case 2: // DW_CFA_offset: reg in the opcode, ULEB offset
			if !uleb() {
				return starts, false
			}
			continue
		case 3: // DW_CFA_restore
			continue
		}
		good := true
		switch op {
		case 0x00, 0x0a, 0x0b: // nop, remember_state, restore_state
		case 0x02, 0x03, 0x04: // advance_loc1, 2, 4
			n := map[byte]int{0x02: 1, 0x03: 2, 0x04: 4}[op]
			var d uint64
			d, good = fixed(n)
			if good {
				advance(d)
			}
		case 0x06, 0x07, 0x08, 0x0d, 0x0e, 0x13, 0x2e: // one ULEB/SLEB operand
			good = uleb()
		case 0x05, 0x09, 0x0c, 0x11, 0x12, 0x14, 0x15, 0x2f: // two operands
			good = uleb() && uleb()
		case 0x0f: // def_cfa_expression: block
			good = block()
		case 0x10, 0x16: // expression, val_expression: reg, block
			good = uleb() && block()
		default: // set_loc (pointer encoding) and vendor opcodes
			return starts, false
		}
		if !good {
			return starts, false
		}
	}
	return starts, true
}
