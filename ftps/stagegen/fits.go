package stagegen

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// BlockSize is the FITS logical record: headers and data both fill whole
// blocks of this many bytes.
const BlockSize = 2880

const cardLen = 80

// Card is one 80-character FITS header record. A nil Value writes a
// commentary card (COMMENT, HISTORY or a blank key) whose text is Comment.
type Card struct {
	Key     string
	Value   any // bool, int, int64, float64 or string
	Comment string
}

// String formats the card in the FITS fixed format, padded to 80 bytes.
func (c Card) String() string {
	key := strings.ToUpper(c.Key)
	if len(key) > 8 {
		key = key[:8]
	}
	var b strings.Builder
	b.WriteString(fmt.Sprintf("%-8s", key))
	if c.Value == nil {
		b.WriteString(c.Comment)
		return pad(b.String(), cardLen, ' ')
	}
	b.WriteString("= ")
	switch v := c.Value.(type) {
	case bool:
		t := "F"
		if v {
			t = "T"
		}
		b.WriteString(fmt.Sprintf("%20s", t))
	case int:
		b.WriteString(fmt.Sprintf("%20d", v))
	case int64:
		b.WriteString(fmt.Sprintf("%20d", v))
	case float64:
		b.WriteString(fmt.Sprintf("%20s", formatReal(v)))
	case string:
		s := "'" + fmt.Sprintf("%-8s", strings.ReplaceAll(v, "'", "''")) + "'"
		b.WriteString(fmt.Sprintf("%-20s", s))
	default:
		panic(fmt.Sprintf("stagegen: FITS card %s: unsupported value type %T", key, c.Value))
	}
	if c.Comment != "" {
		b.WriteString(" / ")
		b.WriteString(c.Comment)
	}
	return pad(b.String(), cardLen, ' ')
}

// formatReal writes a float the way FITS readers expect: always with a
// decimal point or an exponent, exponent letter upper case.
func formatReal(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		panic("stagegen: FITS cannot hold NaN or Inf in a header")
	}
	s := strconv.FormatFloat(v, 'G', -1, 64)
	if !strings.ContainsAny(s, ".E") {
		s += ".0"
	}
	return s
}

func pad(s string, n int, c byte) string {
	if len(s) >= n {
		return s[:n]
	}
	return s + strings.Repeat(string(c), n-len(s))
}

// FITSHeader returns the cards followed by END, padded with spaces to a
// whole number of 2880-byte blocks.
func FITSHeader(cards ...Card) []byte {
	var b strings.Builder
	for _, c := range cards {
		b.WriteString(c.String())
	}
	b.WriteString(pad("END", cardLen, ' '))
	n := b.Len()
	b.WriteString(strings.Repeat(" ", int(BlockPad(int64(n)))))
	return []byte(b.String())
}

// BlockPad is how many bytes follow n bytes to end on a block boundary.
func BlockPad(n int64) int64 {
	if r := n % BlockSize; r != 0 {
		return BlockSize - r
	}
	return 0
}

// Image is one FITS header-and-data unit holding an image (or no data when
// Axes is empty).
type Image struct {
	Extension bool      // XTENSION='IMAGE' rather than the primary SIMPLE=T
	BITPIX    int       // 8, 16, 32, 64, -32 or -64; 0 means 8
	Axes      []int     // NAXIS1, NAXIS2, ...
	Cards     []Card    // keywords after the mandatory ones
	Data      io.Reader // big-endian pixels; nil writes zeros; DataSize bytes are read
}

// DataSize is the number of pixel bytes, before padding.
func (im Image) DataSize() int64 {
	if len(im.Axes) == 0 {
		return 0
	}
	bitpix := im.BITPIX
	if bitpix == 0 {
		bitpix = 8
	}
	n := int64(abs(bitpix) / 8)
	for _, a := range im.Axes {
		n *= int64(a)
	}
	return n
}

// Size is the bytes the unit takes in a file: header and padded data.
func (im Image) Size() int64 {
	d := im.DataSize()
	return int64(len(im.Header())) + d + BlockPad(d)
}

// Header is the unit's header, mandatory keywords first.
func (im Image) Header() []byte {
	if im.BITPIX == 0 {
		im.BITPIX = 8
	}
	var cards []Card
	if im.Extension {
		cards = append(cards, Card{Key: "XTENSION", Value: "IMAGE", Comment: "image extension"})
	} else {
		cards = append(cards, Card{Key: "SIMPLE", Value: true, Comment: "conforms to FITS standard"})
	}
	cards = append(cards,
		Card{Key: "BITPIX", Value: im.BITPIX, Comment: "bits per data value"},
		Card{Key: "NAXIS", Value: len(im.Axes), Comment: "number of data axes"})
	for i, a := range im.Axes {
		cards = append(cards, Card{Key: fmt.Sprintf("NAXIS%d", i+1), Value: a})
	}
	if im.Extension {
		cards = append(cards,
			Card{Key: "PCOUNT", Value: 0, Comment: "no group parameters"},
			Card{Key: "GCOUNT", Value: 1, Comment: "one data group"})
	} else {
		cards = append(cards, Card{Key: "EXTEND", Value: true, Comment: "file may contain extensions"})
	}
	cards = append(cards, im.Cards...)
	return FITSHeader(cards...)
}

// WriteFITS writes the units one after another and returns the bytes
// written. The first unit should be the primary one (Extension false).
func WriteFITS(w io.Writer, hdus ...Image) (int64, error) {
	var total int64
	for i, im := range hdus {
		n, err := w.Write(im.Header())
		total += int64(n)
		if err != nil {
			return total, fmt.Errorf("write FITS unit %d header: %w", i, err)
		}
		d := im.DataSize()
		src := im.Data
		if src == nil {
			src = zeros{}
		}
		// Large writes for large images, no large buffer for small ones.
		buf := make([]byte, min(max(d, 1), 1<<20))
		m, err := io.CopyBuffer(w, io.LimitReader(src, d), buf)
		total += m
		if err == nil && m < d {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return total, fmt.Errorf("write FITS unit %d data: %w", i, err)
		}
		k, err := w.Write(make([]byte, BlockPad(d)))
		total += int64(k)
		if err != nil {
			return total, fmt.Errorf("write FITS unit %d padding: %w", i, err)
		}
	}
	return total, nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
