// Package fits walks the header-and-data units (HDUs) of a FITS file
// without reading their data: it finds each header's END card, takes the
// size of the data that follows from the header's keywords, and jumps over
// it to the next header. That is the chain a FITS reader such as astropy
// follows, one dependent step after another; walking it ahead of the reader
// lets every header be fetched before it is asked for.
//
// The walk trusts nothing it reads. It is bounded by a count of units and
// of header bytes, and it stops, without an error, at the first header it
// cannot follow: not FITS, malformed, without END, with sizes that
// overflow, or claiming data past the end of the file. A walk is only a
// guess at what a reader will want; the reader itself still sees exactly
// the bytes of the file.
package fits

import (
	"bytes"
	"io"
	"math"
	"strconv"
)

// BlockSize is the FITS logical record: headers and data are both stored
// in whole blocks of this many bytes.
const BlockSize = 2880

const (
	cardLen       = 80
	cardsPerBlock = BlockSize / cardLen
	maxAxes       = 999
)

// Signature is how the first block of every FITS file begins.
var Signature = []byte("SIMPLE  =")

// IsFITS reports whether first, the leading bytes of a file, opens a FITS
// primary header.
func IsFITS(first []byte) bool { return bytes.HasPrefix(first, Signature) }

// HDU is one header-and-data unit as the walk found it.
type HDU struct {
	Offset    int64 // first byte of the header
	HeaderLen int64 // bytes of header, whole blocks, END card included
	DataLen   int64 // bytes of data, padded to whole blocks
}

// DataOffset is where the unit's data begins.
func (h HDU) DataOffset() int64 { return h.Offset + h.HeaderLen }

// End is the offset just past the unit: where the next header begins.
func (h HDU) End() int64 { return h.DataOffset() + h.DataLen }

// Limits bound a walk. Zero fields take their defaults.
type Limits struct {
	HDUs        int   // units walked at most; default DefaultHDUs
	HeaderBytes int64 // header bytes read at most, over all units; default DefaultHeaderBytes
}

// Defaults for Limits. Real products have a handful of units (HST flt: 7,
// JWST cal: 9 or so) with headers of a few tens of blocks.
const (
	DefaultHDUs        = 64
	DefaultHeaderBytes = 4 << 20
)

// Stop says why a walk ended.
type Stop int

const (
	// AtEnd: the last unit ends exactly where the file does.
	AtEnd Stop = iota
	// Limited: a bound of Limits was reached.
	Limited
	// NotFITS: the first card is not SIMPLE = T (or, after the first
	// unit, XTENSION), or the bytes after the last unit are not a header.
	NotFITS
	// Malformed: a mandatory keyword is missing, out of order or out of range.
	Malformed
	// NoEnd: the header runs to the end of the file without an END card.
	NoEnd
	// Overflow: the data size does not fit in an int64.
	Overflow
	// Short: the file is shorter than its headers claim.
	Short
	// ReadFailed: a block could not be read.
	ReadFailed
)

var stopNames = [...]string{"end", "limited", "not FITS", "malformed", "no END", "overflow", "short", "read failed"}

func (s Stop) String() string {
	if s < 0 || int(s) >= len(stopNames) {
		return "stop(" + strconv.Itoa(int(s)) + ")"
	}
	return stopNames[s]
}

// Walk follows the units of a file of size bytes, reading header blocks
// through r, and calls visit with each whole unit as soon as its header is
// read: the unit's header and data lie inside the file. visit returning
// false ends the walk (reported as Limited). Walk returns the units
// visited and why it stopped; it never reads a data block.
func Walk(r io.ReaderAt, size int64, lim Limits, visit func(HDU) bool) ([]HDU, Stop) {
	if lim.HDUs <= 0 {
		lim.HDUs = DefaultHDUs
	}
	if lim.HeaderBytes <= 0 {
		lim.HeaderBytes = DefaultHeaderBytes
	}
	w := walker{r: r, size: size, budget: lim.HeaderBytes, block: make([]byte, BlockSize)}
	var out []HDU
	off := int64(0)
	for {
		if off == size && len(out) > 0 {
			return out, AtEnd
		}
		if len(out) == lim.HDUs {
			return out, Limited
		}
		h, stop, ok := w.unit(off, len(out) == 0)
		if !ok {
			return out, stop
		}
		out = append(out, h)
		if visit != nil && !visit(h) {
			return out, Limited
		}
		off = h.End()
	}
}

type walker struct {
	r      io.ReaderAt
	size   int64
	budget int64 // header bytes left to read
	block  []byte
}

// unit reads the header at off and sizes its data.
func (w *walker) unit(off int64, primary bool) (HDU, Stop, bool) {
	var kw keywords
	at := off
	for !kw.end {
		if at+BlockSize > w.size {
			if at == off && !primary {
				return HDU{}, NotFITS, false // trailing bytes, not a header
			}
			return HDU{}, NoEnd, false
		}
		if w.budget < BlockSize {
			return HDU{}, Limited, false
		}
		w.budget -= BlockSize
		if n, err := w.r.ReadAt(w.block, at); n < BlockSize {
			_ = err // a short read is all the walk needs to know
			return HDU{}, ReadFailed, false
		}
		if stop, ok := kw.parseBlock(w.block, at == off, primary); !ok {
			return HDU{}, stop, false
		}
		at += BlockSize
	}
	data, stop, ok := kw.dataLen(primary)
	if !ok {
		return HDU{}, stop, false
	}
	h := HDU{Offset: off, HeaderLen: at - off, DataLen: data}
	if data > w.size-h.DataOffset() {
		return HDU{}, Short, false
	}
	return h, AtEnd, true
}

// keywords are the values of the mandatory keywords a header gave.
type keywords struct {
	cards  int // cards read so far
	end    bool
	bitpix int64
	naxis  int64
	axes   []int64
	pcount int64
	gcount int64
	groups bool
	seen   uint8 // which of pcount, gcount were given
}

const (
	seenPCOUNT = 1 << iota
	seenGCOUNT
)

// parseBlock reads one block of cards. The first cards must be the
// mandatory ones in the standard's order: SIMPLE or XTENSION, BITPIX,
// NAXIS, NAXIS1..NAXISn.
func (kw *keywords) parseBlock(b []byte, first, primary bool) (Stop, bool) {
	for i := range cardsPerBlock {
		card := b[i*cardLen : (i+1)*cardLen]
		// The lead card first: what follows the last unit is often not
		// text at all, and that ends the walk as "not FITS".
		if stop, ok := kw.card(card, first && i == 0, primary); !ok {
			return stop, false
		}
		for _, c := range card {
			if c < 0x20 || c > 0x7e {
				return Malformed, false // headers are printable ASCII
			}
		}
		kw.cards++
		if kw.end {
			return AtEnd, true
		}
	}
	return AtEnd, true
}

func (kw *keywords) card(card []byte, lead, primary bool) (Stop, bool) {
	key := string(bytes.TrimRight(card[:8], " "))
	if lead {
		switch {
		case primary && key == "SIMPLE" && value(card) == "T":
			return AtEnd, true
		case !primary && key == "XTENSION" && hasValue(card):
			return AtEnd, true
		}
		return NotFITS, false
	}
	switch {
	case kw.cards == 1:
		return kw.integer(card, "BITPIX", &kw.bitpix, validBitpix)
	case kw.cards == 2:
		return kw.integer(card, "NAXIS", &kw.naxis, func(n int64) bool { return n >= 0 && n <= maxAxes })
	case kw.cards < 3+int(kw.naxis):
		var n int64
		stop, ok := kw.integer(card, "NAXIS"+strconv.Itoa(kw.cards-2), &n, func(n int64) bool { return n >= 0 })
		kw.axes = append(kw.axes, n)
		return stop, ok
	}
	switch key {
	case "END":
		kw.end = true
	case "PCOUNT":
		if kw.seen&seenPCOUNT == 0 {
			kw.seen |= seenPCOUNT
			return kw.integer(card, key, &kw.pcount, func(n int64) bool { return n >= 0 })
		}
	case "GCOUNT":
		if kw.seen&seenGCOUNT == 0 {
			kw.seen |= seenGCOUNT
			return kw.integer(card, key, &kw.gcount, func(n int64) bool { return n >= 0 })
		}
	case "GROUPS":
		kw.groups = value(card) == "T"
	}
	return AtEnd, true
}

// integer reads the card as the integer keyword want, checked by valid.
func (kw *keywords) integer(card []byte, want string, dst *int64, valid func(int64) bool) (Stop, bool) {
	if string(bytes.TrimRight(card[:8], " ")) != want || !hasValue(card) {
		return Malformed, false
	}
	n, err := strconv.ParseInt(value(card), 10, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return Overflow, false
		}
		return Malformed, false
	}
	if !valid(n) {
		return Malformed, false
	}
	*dst = n
	return AtEnd, true
}

func validBitpix(n int64) bool {
	switch n {
	case 8, 16, 32, 64, -32, -64:
		return true
	}
	return false
}

// dataLen is the data size the header gives, padded to whole blocks:
// |BITPIX|/8 × GCOUNT × (PCOUNT + NAXIS1 × … × NAXISn), where a primary
// header of random groups (GROUPS = T, NAXIS1 = 0) leaves NAXIS1 out.
func (kw *keywords) dataLen(primary bool) (int64, Stop, bool) {
	if kw.cards < 3+int(kw.naxis) {
		return 0, Malformed, false // END among the mandatory keywords
	}
	if kw.naxis == 0 {
		return 0, AtEnd, true
	}
	pcount, gcount := int64(0), int64(1)
	if !primary || kw.groups {
		if kw.seen&seenPCOUNT != 0 {
			pcount = kw.pcount
		}
		if kw.seen&seenGCOUNT != 0 {
			gcount = kw.gcount
		}
	}
	axes := kw.axes
	if primary && kw.groups && axes[0] == 0 {
		axes = axes[1:]
	}
	n := int64(1)
	for _, a := range axes {
		var ok bool
		if n, ok = mul(n, a); !ok {
			return 0, Overflow, false
		}
	}
	var ok bool
	if n, ok = add(n, pcount); !ok {
		return 0, Overflow, false
	}
	if n, ok = mul(n, gcount); !ok {
		return 0, Overflow, false
	}
	if n, ok = mul(n, abs(kw.bitpix)/8); !ok {
		return 0, Overflow, false
	}
	if r := n % BlockSize; r != 0 {
		if n, ok = add(n, BlockSize-r); !ok {
			return 0, Overflow, false
		}
	}
	return n, AtEnd, true
}

// hasValue reports whether the card has the value indicator "= " in
// columns 9 and 10.
func hasValue(card []byte) bool { return card[8] == '=' && card[9] == ' ' }

// value is the card's value field, up to its comment, without blanks. A
// string value keeps its quotes; only logical and integer values matter here.
func value(card []byte) string {
	if !hasValue(card) {
		return ""
	}
	v := bytes.TrimLeft(card[10:], " ")
	if len(v) > 0 && v[0] == '\'' {
		return string(bytes.TrimRight(v, " "))
	}
	if i := bytes.IndexByte(v, '/'); i >= 0 {
		v = v[:i]
	}
	return string(bytes.TrimSpace(v))
}

func mul(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	if a > math.MaxInt64/b {
		return 0, false
	}
	return a * b, true
}

func add(a, b int64) (int64, bool) {
	if a > math.MaxInt64-b {
		return 0, false
	}
	return a + b, true
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}
