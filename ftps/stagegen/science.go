package stagegen

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"
)

// A science stage holds what astronomers' tools walk: a flat directory of
// many small products, an HST WFC3/UVIS calibrated image and a JWST
// calibrated image, both multi-extension files shaped like the archive's.
// Names are relative to the directory given to AddScience.
const (
	// ProductsDir holds ScienceOptions.Products small files, HST then JWST
	// by name.
	ProductsDir = "products"
	// FLTName is an HST WFC3/UVIS _flt file: PRIMARY, then SCI, ERR, DQ
	// for each of two 4096x2051 chips, about 168 MB.
	FLTName = "iexn01a1q_flt.fits"
	// CalName is a JWST NIRCam _cal file: PRIMARY, SCI, ERR, DQ, AREA,
	// VAR_POISSON, VAR_RNOISE, VAR_FLAT (2048x2048 each) and an ASDF
	// binary table, about 118 MB.
	CalName = "jw02736007001_03101_00001_nrcb1_cal.fits"

	// DefaultProducts is how many small products AddScience writes by default.
	DefaultProducts = 500
)

// Patch is the region of every image of FLTName and CalName that holds
// pixels other than zero: rows [PatchRow, PatchRow+PatchRows) in full
// (FITS NAXIS2, astropy's first index). The rest of the data is zero and
// is not written: the big files are sparse and cost little disk.
const (
	PatchRow  = 1000
	PatchRows = 100
)

// ScienceOptions shapes AddScience. The zero value gives the default.
type ScienceOptions struct {
	Products int       // small files in ProductsDir; 0 means 500, negative means none
	ModTime  time.Time // every entry's time; zero means 2024-05-06 07:08:09 UTC
}

// AddScience writes a science stage into dir, relative to s.Root, and
// records its entries in s (public, like the anonymous stages).
func (s *Stage) AddScience(dir string, o ScienceOptions, seed uint64) error {
	if o.Products == 0 {
		o.Products = DefaultProducts
	}
	if o.ModTime.IsZero() {
		o.ModTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	}
	if seed == 0 {
		seed = 1
	}
	dir = clean(dir)
	parent, hadParent := s.byPath[path.Dir(dir)]
	w := &stageWriter{s: s, seed: seed}
	first := len(s.Files)
	w.dir(dir, Public, o.ModTime)
	if o.Products > 0 {
		w.dir(path.Join(dir, ProductsDir), Public, o.ModTime)
		for i := range o.Products {
			name, hdus := product(i, o.Products)
			w.fits(path.Join(dir, ProductsDir, name), Public, o.ModTime.Add(time.Duration(i)*time.Second), hdus...)
		}
	}
	w.sparse(path.Join(dir, FLTName), o.ModTime, flt())
	w.sparse(path.Join(dir, CalName), o.ModTime, cal())
	if w.err != nil {
		return fmt.Errorf("science stage %s: %w", dir, w.err)
	}
	added := s.Files[first:]
	if hadParent {
		added = append(added, parent) // its time changed when dir was made
	}
	if err := settle(s, added); err != nil {
		return fmt.Errorf("science stage %s: %w", dir, err)
	}
	sort.Slice(s.Files, func(i, j int) bool { return s.Files[i].Path < s.Files[j].Path })
	return nil
}

// settle sets the modes and times of entries just written, directories
// last: writing into one changes its time.
func settle(s *Stage, files []*File) error {
	for _, dirs := range []bool{false, true} {
		for _, f := range files {
			if f.IsDir() != dirs {
				continue
			}
			local := s.Local(f.Path)
			if err := os.Chmod(local, f.Mode.Perm()); err != nil {
				return err
			}
			if err := os.Chtimes(local, f.ModTime, f.ModTime); err != nil {
				return err
			}
		}
	}
	return nil
}

// product is the i-th of n small files: HST names for the first half,
// JWST names for the rest, so the listing's order is the order written.
// Each is a primary header and one small SCI image.
func product(i, n int) (string, []Image) {
	sci := Image{Extension: true, BITPIX: -32, Axes: []int{32, 32}, Cards: []Card{
		{Key: "EXTNAME", Value: "SCI"}, {Key: "EXTVER", Value: 1}, {Key: "BUNIT", Value: "ELECTRONS/S"},
	}}
	if i < n/2 {
		root := fmt.Sprintf("iexn%03dq", i) // rootname: instrument, program, visit, exposure
		return root + "_flt.fits", []Image{{Cards: []Card{
			{Key: "TELESCOP", Value: "HST"}, {Key: "INSTRUME", Value: "WFC3"}, {Key: "DETECTOR", Value: "UVIS"},
			{Key: "ROOTNAME", Value: root}, {Key: "FILTER", Value: "F606W"},
			{Key: "EXPTIME", Value: 350.0 + float64(i), Comment: "exposure duration (seconds)"},
		}}, sci}
	}
	j := i - n/2 + 1
	return fmt.Sprintf("jw02736001001_02101_%05d_nrcb1_cal.fits", j), []Image{{Cards: []Card{
		{Key: "TELESCOP", Value: "JWST"}, {Key: "INSTRUME", Value: "NIRCAM"}, {Key: "DETECTOR", Value: "NRCB1"},
		{Key: "PROGRAM", Value: "02736"}, {Key: "EXPOSURE", Value: j}, {Key: "FILTER", Value: "F200W"},
	}}, sci}
}

// fillerCards pads a header to the length real products have (hundreds of
// keywords: several blocks each), which is what makes a header walk cost
// more than one block.
func fillerCards(prefix string, n int) []Card {
	cards := make([]Card, n)
	for i := range cards {
		cards[i] = Card{Key: fmt.Sprintf("%s%04d", prefix, i), Value: float64(i) + 0.5, Comment: "calibration keyword"}
	}
	return cards
}

func ext(name string, ver, bitpix, nx, ny int, cards ...Card) Image {
	cards = append([]Card{{Key: "EXTNAME", Value: name}, {Key: "EXTVER", Value: ver}}, cards...)
	return Image{Extension: true, BITPIX: bitpix, Axes: []int{nx, ny}, Cards: append(cards, fillerCards("C", 60)...)}
}

// flt is an HST WFC3/UVIS _flt file: 7 units.
func flt() []Image {
	hdus := []Image{{Cards: append([]Card{
		{Key: "NEXTEND", Value: 6, Comment: "number of extensions"},
		{Key: "TELESCOP", Value: "HST"}, {Key: "INSTRUME", Value: "WFC3"}, {Key: "DETECTOR", Value: "UVIS"},
		{Key: "ROOTNAME", Value: "iexn01a1q"}, {Key: "FILTER", Value: "F606W"},
		{Key: "EXPTIME", Value: 1200.0, Comment: "exposure duration (seconds)"},
	}, fillerCards("P", 280)...)}}
	for chip := 1; chip <= 2; chip++ {
		hdus = append(hdus,
			ext("SCI", chip, -32, 4096, 2051, Card{Key: "BUNIT", Value: "ELECTRONS"}, Card{Key: "CCDCHIP", Value: 3 - chip}),
			ext("ERR", chip, -32, 4096, 2051, Card{Key: "BUNIT", Value: "ELECTRONS"}),
			ext("DQ", chip, 16, 4096, 2051))
	}
	return hdus
}

// asdfText is the ASDF tree the JWST pipeline stores in its last unit.
const asdfText = "#ASDF 1.0.0\n#ASDF_STANDARD 1.5.0\n%YAML 1.1\n%TAG ! tag:stsci.edu:asdf/\n--- !core/asdf-1.1.0\n" +
	"asdf_library: {name: asdf, version: 2.15.0}\nmeta: {telescope: JWST, instrument: {name: NIRCAM, detector: NRCB1}}\n...\n"

// cal is a JWST NIRCam _cal file: 8 image units; the ASDF table follows
// them (see asdfTable).
func cal() []Image {
	hdus := []Image{{Cards: append([]Card{
		{Key: "TELESCOP", Value: "JWST"}, {Key: "INSTRUME", Value: "NIRCAM"}, {Key: "DETECTOR", Value: "NRCB1"},
		{Key: "PROGRAM", Value: "02736"}, {Key: "FILTER", Value: "F200W"},
	}, fillerCards("P", 320)...)}}
	for _, name := range []string{"SCI", "ERR", "DQ", "AREA", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"} {
		if name == "DQ" { // unsigned 32-bit, as FITS stores it
			hdus = append(hdus, ext(name, 1, 32, 2048, 2048,
				Card{Key: "BZERO", Value: int64(1) << 31}, Card{Key: "BSCALE", Value: 1}))
			continue
		}
		hdus = append(hdus, ext(name, 1, -32, 2048, 2048))
	}
	return hdus
}

// asdfTable is a binary table of one row holding the ASDF text, the way
// the JWST pipeline writes it.
func asdfTable() []byte {
	n := len(asdfText)
	h := FITSHeader(
		Card{Key: "XTENSION", Value: "BINTABLE", Comment: "binary table extension"},
		Card{Key: "BITPIX", Value: 8}, Card{Key: "NAXIS", Value: 2},
		Card{Key: "NAXIS1", Value: n}, Card{Key: "NAXIS2", Value: 1},
		Card{Key: "PCOUNT", Value: 0}, Card{Key: "GCOUNT", Value: 1}, Card{Key: "TFIELDS", Value: 1},
		Card{Key: "TTYPE1", Value: "ASDF_METADATA"}, Card{Key: "TFORM1", Value: fmt.Sprintf("%dB", n)},
		Card{Key: "EXTNAME", Value: "ASDF"})
	b := append(h, asdfText...)
	return append(b, make([]byte, BlockPad(int64(n)))...)
}

// sparse writes a big image file whose data is zero but for the patch
// rows of each unit, seeking over the zeros. CalName gets its ASDF table.
func (w *stageWriter) sparse(p string, mt time.Time, hdus []Image) {
	for i := range hdus {
		hdus[i].Data = w.patched(fmt.Sprintf("%s#%d", p, i), hdus[i])
	}
	w.holes = true
	defer func() { w.holes = false }()
	w.writeWith(p, Public, mt, newPipeHash(), func(dst io.Writer) error {
		_, err := WriteFITS(dst, hdus...)
		if err == nil && path.Base(p) == CalName {
			_, err = dst.Write(asdfTable())
		}
		return err
	})
}

// patched is an image's data: zeros, but for rows PatchRow.. of
// pseudo-random pixels.
func (w *stageWriter) patched(key string, im Image) io.Reader {
	size := im.DataSize()
	if size == 0 {
		return nil
	}
	row := size / int64(im.Axes[1])
	lo := min(PatchRow*row, size)
	n := min(PatchRows*row, size-lo)
	patch := pixels(w.rng(key), im.BITPIX, n)
	return io.MultiReader(io.LimitReader(zeros{}, lo), patch, io.LimitReader(zeros{}, size-lo-n))
}

// sparseFile writes blocks of zeros as holes.
type sparseFile struct {
	f   *os.File
	off int64
}

// Close sets the file's size, which may end in a hole, and closes it.
func (s *sparseFile) Close() error {
	err := s.f.Truncate(s.off)
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *sparseFile) Write(p []byte) (int, error) {
	if allZero(p) {
		s.off += int64(len(p))
		return len(p), nil
	}
	n, err := s.f.WriteAt(p, s.off)
	s.off += int64(n)
	return n, err
}

func allZero(p []byte) bool {
	var z [4096]byte
	for len(p) > 0 {
		k := min(len(p), len(z))
		if !bytes.Equal(p[:k], z[:k]) {
			return false
		}
		p = p[k:]
	}
	return true
}
