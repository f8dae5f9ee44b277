package ftpstest

import (
	"io"

	"mastfs/ftps/ftpstest/stagegen"
)

// BlockSize is the FITS logical record: headers and data both fill whole
// blocks of this many bytes.
const BlockSize = stagegen.BlockSize

// Card is one 80-character FITS header record.
type Card = stagegen.Card

// Image is one FITS header-and-data unit holding an image.
type Image = stagegen.Image

// FITSHeader returns the cards followed by END, padded to whole blocks.
func FITSHeader(cards ...Card) []byte { return stagegen.FITSHeader(cards...) }

// BlockPad is how many bytes follow n bytes to end on a block boundary.
func BlockPad(n int64) int64 { return stagegen.BlockPad(n) }

// WriteFITS writes the units one after another and returns the bytes written.
func WriteFITS(w io.Writer, hdus ...Image) (int64, error) { return stagegen.WriteFITS(w, hdus...) }
