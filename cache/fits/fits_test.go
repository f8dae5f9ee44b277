package fits

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// card formats one header card: key, then "= " and the value when value is
// not empty.
func card(key, value string) string {
	s := fmt.Sprintf("%-8s", key)
	if value != "" {
		s += "= " + fmt.Sprintf("%20s", value)
	}
	return fmt.Sprintf("%-80s", s)
}

// header joins cards and END, padded with blanks to whole blocks.
func header(cards ...string) []byte {
	s := strings.Join(cards, "") + card("END", "")
	if r := len(s) % BlockSize; r != 0 {
		s += strings.Repeat(" ", BlockSize-r)
	}
	return []byte(s)
}

// image is the header of an image unit with the given axes.
func image(primary bool, bitpix int, axes []int64, extra ...string) []byte {
	cards := []string{card("SIMPLE", "T")}
	if !primary {
		cards = []string{card("XTENSION", "'IMAGE   '")}
	}
	cards = append(cards, card("BITPIX", fmt.Sprint(bitpix)), card("NAXIS", fmt.Sprint(len(axes))))
	for i, a := range axes {
		cards = append(cards, card(fmt.Sprintf("NAXIS%d", i+1), fmt.Sprint(a)))
	}
	if !primary {
		cards = append(cards, card("PCOUNT", "0"), card("GCOUNT", "1"))
	}
	return header(append(cards, extra...)...)
}

func data(n int64) []byte {
	if r := n % BlockSize; r != 0 {
		n += BlockSize - r
	}
	return make([]byte, n)
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// counter is a file that counts the bytes read from it and remembers
// where each read began.
type counter struct {
	b    []byte
	read int64
	offs []int64
	fail int64 // reads at or past this offset fail; 0: none
}

func (c *counter) ReadAt(p []byte, off int64) (int, error) {
	c.offs = append(c.offs, off)
	if c.fail > 0 && off >= c.fail {
		return 0, errors.New("link down")
	}
	if off >= int64(len(c.b)) {
		return 0, io.EOF
	}
	n := copy(p, c.b[off:])
	c.read += int64(n)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func TestWalk(t *testing.T) {
	comments := make([]string, 80) // a header of three blocks
	for i := range comments {
		comments[i] = card("HISTORY", "")
	}
	sci := image(false, -32, []int64{100, 50})
	bintable := header(card("XTENSION", "'BINTABLE'"), card("BITPIX", "8"), card("NAXIS", "2"),
		card("NAXIS1", "24"), card("NAXIS2", "10"), card("PCOUNT", "3000"), card("GCOUNT", "1"))
	groups := header(card("SIMPLE", "T"), card("BITPIX", "16"), card("NAXIS", "3"), card("NAXIS1", "0"),
		card("NAXIS2", "3"), card("NAXIS3", "4"), card("GROUPS", "T"), card("PCOUNT", "2"), card("GCOUNT", "5"))
	twoHDUs := join(image(true, 8, nil), sci, data(100*50*4))

	tests := []struct {
		name  string
		file  []byte
		lim   Limits
		fail  int64
		units []HDU
		stop  Stop
	}{
		{"primary only", image(true, 8, nil), Limits{}, 0,
			[]HDU{{0, BlockSize, 0}}, AtEnd},
		{"primary with data", join(image(true, 16, []int64{10, 10}), data(200)), Limits{}, 0,
			[]HDU{{0, BlockSize, BlockSize}}, AtEnd},
		{"image extension", twoHDUs, Limits{}, 0,
			[]HDU{{0, BlockSize, 0}, {BlockSize, BlockSize, 7 * BlockSize}}, AtEnd},
		{"header of three blocks", join(image(true, 8, nil, comments...), sci, data(20000)), Limits{}, 0,
			[]HDU{{0, 3 * BlockSize, 0}, {3 * BlockSize, BlockSize, 7 * BlockSize}}, AtEnd},
		{"binary table with a heap", join(image(true, 8, nil), bintable, data(240+3000)), Limits{}, 0,
			[]HDU{{0, BlockSize, 0}, {BlockSize, BlockSize, 2 * BlockSize}}, AtEnd},
		{"random groups", join(groups, data(2*5*(2+12))), Limits{}, 0,
			[]HDU{{0, BlockSize, BlockSize}}, AtEnd},
		{"zero-length axis", join(image(true, 8, nil), image(false, 32, []int64{0, 7})), Limits{}, 0,
			[]HDU{{0, BlockSize, 0}, {BlockSize, BlockSize, 0}}, AtEnd},

		{"not FITS", []byte(strings.Repeat("x", BlockSize)), Limits{}, 0, nil, NotFITS},
		{"SIMPLE = F", header(card("SIMPLE", "F"), card("BITPIX", "8"), card("NAXIS", "0")), Limits{}, 0, nil, NotFITS},
		{"extension first", image(false, 8, nil), Limits{}, 0, nil, NotFITS},
		{"trailing bytes after the last unit", join(twoHDUs, []byte("padding")), Limits{}, 0,
			[]HDU{{0, BlockSize, 0}, {BlockSize, BlockSize, 7 * BlockSize}}, NotFITS},
		{"trailing zero block", join(twoHDUs, make([]byte, BlockSize)), Limits{}, 0,
			[]HDU{{0, BlockSize, 0}, {BlockSize, BlockSize, 7 * BlockSize}}, NotFITS},
		{"bad BITPIX", header(card("SIMPLE", "T"), card("BITPIX", "12"), card("NAXIS", "0")), Limits{}, 0, nil, Malformed},
		{"BITPIX not an integer", header(card("SIMPLE", "T"), card("BITPIX", "8.0"), card("NAXIS", "0")), Limits{}, 0, nil, Malformed},
		{"NAXIS missing", header(card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS1", "4")), Limits{}, 0, nil, Malformed},
		{"axes out of order", header(card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "2"),
			card("NAXIS2", "4"), card("NAXIS1", "4")), Limits{}, 0, nil, Malformed},
		{"END among the axes", header(card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "2"),
			card("NAXIS1", "4")), Limits{}, 0, nil, Malformed},
		{"negative axis", image(true, 8, []int64{-4}), Limits{}, 0, nil, Malformed},
		{"NAXIS too large", header(card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "1000")), Limits{}, 0, nil, Malformed},
		{"control byte in a card", header(card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "0"), card("OBJECT", "'\x00'")), Limits{}, 0, nil, Malformed},
		{"bad extension header", join(image(true, 8, nil), header(card("XTENSION", "'IMAGE   '"), card("NAXIS", "0"))),
			Limits{}, 0, []HDU{{0, BlockSize, 0}}, Malformed},
		{"no END", []byte(strings.Repeat(card("SIMPLE", "T")+card("BITPIX", "8")+card("NAXIS", "0")+
			strings.Repeat(card("COMMENT", ""), 33), 2)), Limits{}, 0, nil, NoEnd},
		{"header cut short", image(true, 8, nil)[:1000], Limits{}, 0, nil, NoEnd},
		{"extension header cut short", join(image(true, 8, nil), sci[:BlockSize-1]), Limits{}, 0,
			[]HDU{{0, BlockSize, 0}}, NotFITS},
		{"empty file", nil, Limits{}, 0, nil, NoEnd},
		{"NAXISn past int64", header(card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "1"),
			card("NAXIS1", "99999999999999999999")), Limits{}, 0, nil, Overflow},
		{"product of axes overflows", image(true, 64, []int64{1 << 31, 1 << 31, 4}), Limits{}, 0, nil, Overflow},
		{"bytes per pixel overflow", image(true, -64, []int64{1 << 61}), Limits{}, 0, nil, Overflow},
		{"heap overflows", join(image(true, 8, nil), header(card("XTENSION", "'BINTABLE'"), card("BITPIX", "8"),
			card("NAXIS", "2"), card("NAXIS1", "8"), card("NAXIS2", "1"), card("PCOUNT", "9223372036854775800"),
			card("GCOUNT", "1"))), Limits{}, 0, []HDU{{0, BlockSize, 0}}, Overflow},
		{"data past the end", join(image(true, 16, []int64{100, 100}), data(100)), Limits{}, 0, nil, Short},
		{"second unit's data past the end", join(image(true, 8, nil), sci, data(1000)), Limits{}, 0,
			[]HDU{{0, BlockSize, 0}}, Short},

		{"HDU limit", twoHDUs, Limits{HDUs: 1}, 0, []HDU{{0, BlockSize, 0}}, Limited},
		{"header bytes limit", join(image(true, 8, nil, comments...), sci, data(20000)), Limits{HeaderBytes: 3 * BlockSize}, 0,
			[]HDU{{0, 3 * BlockSize, 0}}, Limited},
		{"read fails", twoHDUs, Limits{}, BlockSize, []HDU{{0, BlockSize, 0}}, ReadFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &counter{b: tt.file, fail: tt.fail}
			var visited []HDU
			units, stop := Walk(c, int64(len(tt.file)), tt.lim, func(h HDU) bool {
				visited = append(visited, h)
				return true
			})
			if stop != tt.stop {
				t.Errorf("stop = %v, want %v", stop, tt.stop)
			}
			if fmt.Sprint(units) != fmt.Sprint(tt.units) {
				t.Errorf("units = %v, want %v", units, tt.units)
			}
			if fmt.Sprint(visited) != fmt.Sprint(units) {
				t.Errorf("visited %v, returned %v", visited, units)
			}
			checkReads(t, c, units, tt.lim)
		})
	}
}

// checkReads: the walk reads whole blocks of headers only, within its bound.
func checkReads(t *testing.T, c *counter, units []HDU, lim Limits) {
	t.Helper()
	if lim.HeaderBytes == 0 {
		lim.HeaderBytes = DefaultHeaderBytes
	}
	if c.read > lim.HeaderBytes {
		t.Errorf("read %d header bytes, bound %d", c.read, lim.HeaderBytes)
	}
	for _, off := range c.offs {
		if off%BlockSize != 0 {
			t.Errorf("read at %d, not a block boundary", off)
		}
		for _, h := range units {
			if off >= h.DataOffset() && off < h.End() {
				t.Errorf("read at %d, inside the data of %v", off, h)
			}
		}
	}
}

func TestWalkStopsWhenVisitSaysSo(t *testing.T) {
	f := join(image(true, 8, nil), image(false, 8, []int64{10}), data(10), image(false, 8, nil))
	n := 0
	units, stop := Walk(bytes.NewReader(f), int64(len(f)), Limits{}, func(HDU) bool { n++; return n < 2 })
	if len(units) != 2 || stop != Limited {
		t.Fatalf("units %v, stop %v; want 2 units, limited", units, stop)
	}
}

func TestIsFITS(t *testing.T) {
	for in, want := range map[string]bool{
		string(image(true, 8, nil)):      true,
		"SIMPLE  =                    T": true,
		"SIMPLE =  T":                    false,
		"XTENSION= 'IMAGE   '":           false,
		"":                               false,
		"\x1f\x8b\x08":                   false, // gzip
	} {
		if got := IsFITS([]byte(in)); got != want {
			t.Errorf("IsFITS(%.20q) = %v, want %v", in, got, want)
		}
	}
}

func FuzzWalk(f *testing.F) {
	f.Add(join(image(true, 8, nil), image(false, -32, []int64{100, 50}), data(20000)), int64(0))
	f.Add(join(image(true, 16, []int64{10, 10}), data(200)), int64(0))
	f.Add(header(card("SIMPLE", "T"), card("BITPIX", "16"), card("NAXIS", "3"), card("NAXIS1", "0"),
		card("NAXIS2", "3"), card("NAXIS3", "4"), card("GROUPS", "T"), card("PCOUNT", "2"), card("GCOUNT", "5")), int64(10))
	f.Add(image(true, 64, []int64{1 << 31, 1 << 31, 4}), int64(0))
	f.Add(image(true, 8, nil)[:1000], int64(-5))
	f.Fuzz(func(t *testing.T, b []byte, extra int64) {
		// extra pretends the file is longer or shorter than the bytes at hand.
		size := int64(len(b)) + extra%(1<<20)
		if size < 0 {
			size = 0
		}
		c := &counter{b: b}
		lim := Limits{HDUs: 8, HeaderBytes: 16 * BlockSize}
		units, stop := Walk(c, size, lim, nil)
		if len(units) > lim.HDUs {
			t.Fatalf("%d units, bound %d", len(units), lim.HDUs)
		}
		next := int64(0)
		for _, h := range units {
			if h.Offset != next || h.HeaderLen <= 0 || h.HeaderLen%BlockSize != 0 ||
				h.DataLen < 0 || h.DataLen%BlockSize != 0 || h.End() > size {
				t.Fatalf("unit %v after %d in a file of %d", h, next, size)
			}
			next = h.End()
		}
		if stop == AtEnd && next != size {
			t.Fatalf("stopped at the end, but the units end at %d of %d", next, size)
		}
		checkReads(t, c, units, lim)
	})
}
