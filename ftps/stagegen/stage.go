// Package stagegen writes a deterministic MAST-like stage to local disk:
// anonymous and per-user stage directories, HST and JWST FITS files, a
// symlink, names with spaces and non-ASCII letters, a large file and a
// directory of many small ones. The test servers of package ftpstest serve
// it, and so does "mastfs demo"; unlike ftpstest it imports no testing code.
package stagegen

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Fixed places in every stage, slash-separated and relative to Stage.Root.
// The FTP path of each is "/" + the constant.
const (
	AnonDir     = "anonymous/anonymous12345"
	AnonDir2    = "anonymous/anonymous67890"
	PrivateDir  = "private"
	HSTFile     = AnonDir + "/jbk802010_flt.fits"
	JWSTFile    = AnonDir + "/jw01234001001_02101_00001_nrca1_cal.fits"
	SpaceFile   = AnonDir + "/with space.fits"
	UnicodeFile = AnonDir + "/ünïcødé_файл.fits"
	LinkFile    = AnonDir + "/latest.fits" // symlink to "with space.fits"
	LinkTarget  = "with space.fits"
	NestedFile  = AnonDir + "/nested/deeper/x.fits"
	LargeFile   = AnonDir + "/large/large.fits"
	ManyDir     = AnonDir + "/many"
	EmptyFile   = AnonDir2 + "/empty.dat"
	SecretFile  = PrivateDir + "/secret.fits"

	// DefaultUser is the authenticated account the servers accept.
	DefaultUser = "mastfs-alice"
	// OtherUser owns a stage nobody else may read; it has no account.
	OtherUser = "mastfs-bob"

	// DefaultLargeSize is the size asked of LargeFile by default.
	DefaultLargeSize = 64 << 20
	// DefaultManyFiles is how many files ManyDir holds by default.
	DefaultManyFiles = 2000
)

// Access says who may read a stage entry through FTP.
type Access int

const (
	// Public entries are read by anonymous users and by the account.
	Public Access = iota
	// UserOnly entries are read by the authenticated account alone.
	UserOnly
	// NoOne entries answer 550 to every FTP user.
	NoOne
)

// StageOptions shapes WriteStage. The zero value gives the default stage.
type StageOptions struct {
	Seed      uint64    // pseudo-random content; 0 means 1
	LargeSize int64     // LargeFile size, rounded down to whole 2880-byte blocks; 0 means 64 MiB
	ManyFiles int       // files in ManyDir; 0 means 2000, negative means none
	User      string    // authenticated account; "" means DefaultUser
	Now       time.Time // recent mtimes are set from it; zero means time.Now()
}

// File is one entry WriteStage made.
type File struct {
	Path    string      // slash path relative to Stage.Root, no leading slash
	Mode    fs.FileMode // type bits and permissions as written
	Size    int64       // bytes; for a link, the length of Target
	SHA256  string      // hex digest of the contents; empty for dirs and links
	ModTime time.Time   // set on disk with Chtimes (Lutimes for links)
	Target  string      // symlink target as written, relative to the link
	Access  Access
}

// IsDir reports whether the entry is a directory.
func (f *File) IsDir() bool { return f.Mode.IsDir() }

// IsLink reports whether the entry is a symbolic link.
func (f *File) IsLink() bool { return f.Mode&fs.ModeSymlink != 0 }

// Stage is a MAST-like tree on local disk and the record of what it holds.
type Stage struct {
	Root     string  // local directory the servers serve as "/"
	User     string  // authenticated account name
	UserDir  string  // "<user>/<user>_stage": only User reads it
	UserFile string  // a file inside UserDir
	OtherDir string  // "mastfs-bob/mastfs-bob_stage": nobody reads it
	Files    []*File // every entry under Root, sorted by Path
	byPath   map[string]*File
}

// Lookup returns the record for a stage or FTP path ("/a/b" or "a/b").
func (s *Stage) Lookup(p string) (*File, bool) {
	f, ok := s.byPath[clean(p)]
	return f, ok
}

// Children returns the entries directly inside dir, sorted by name.
func (s *Stage) Children(dir string) []*File {
	dir = clean(dir)
	var out []*File
	for _, f := range s.Files {
		if path.Dir(f.Path) == dir || (dir == "" && !strings.Contains(f.Path, "/")) {
			out = append(out, f)
		}
	}
	return out
}

// Local returns the local file name of a stage or FTP path.
func (s *Stage) Local(p string) string {
	return filepath.Join(s.Root, filepath.FromSlash(clean(p)))
}

func clean(p string) string {
	p = strings.Trim(path.Clean("/"+p), "/")
	if p == "." {
		return ""
	}
	return p
}

// WriteStage writes a deterministic MAST-like tree into dir (which may
// exist) and returns its record. Ownership for the account is applied by
// the test servers, which know its uid; WriteStage itself needs no privilege.
func WriteStage(dir string, opts StageOptions) (*Stage, error) {
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.LargeSize == 0 {
		opts.LargeSize = DefaultLargeSize
	}
	if opts.ManyFiles == 0 {
		opts.ManyFiles = DefaultManyFiles
	}
	if opts.User == "" {
		opts.User = DefaultUser
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", dir, err)
	}
	s := &Stage{
		Root:     abs,
		User:     opts.User,
		UserDir:  opts.User + "/" + opts.User + "_stage",
		OtherDir: OtherUser + "/" + OtherUser + "_stage",
		byPath:   map[string]*File{},
	}
	s.UserFile = s.UserDir + "/proprietary.fits"
	w := &stageWriter{s: s, seed: opts.Seed}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("stage %s: %w", abs, err)
	}
	w.layout(opts)
	if w.err != nil {
		return nil, fmt.Errorf("stage %s: %w", abs, w.err)
	}
	w.finish()
	if w.err != nil {
		return nil, fmt.Errorf("stage %s: %w", abs, w.err)
	}
	sort.Slice(s.Files, func(i, j int) bool { return s.Files[i].Path < s.Files[j].Path })
	return s, nil
}

// Fixed dates: more than a year old, so LIST prints "Mon DD YYYY".
var (
	oldHST  = time.Date(2019, 3, 14, 9, 26, 53, 0, time.UTC)
	oldMisc = time.Date(2021, 11, 2, 17, 5, 41, 0, time.UTC)
	oldDirs = time.Date(2022, 6, 30, 23, 59, 7, 0, time.UTC)
	oldMany = time.Date(2020, 1, 1, 0, 0, 11, 0, time.UTC)
)

func (w *stageWriter) layout(o StageOptions) {
	// Recent dates are whole hours back from Now, so LIST prints "Mon DD HH:MM".
	base := o.Now.UTC().Truncate(time.Hour)
	recent := func(hours int, sec int) time.Time {
		return base.Add(-time.Duration(hours)*time.Hour + time.Duration(sec)*time.Second)
	}
	u := o.User

	w.dir("anonymous", Public, oldDirs)
	w.dir(AnonDir, Public, recent(30, 0))
	w.fits(HSTFile, Public, oldHST, Image{BITPIX: -32, Axes: []int{64, 64}, Cards: []Card{
		{Key: "TELESCOP", Value: "HST"}, {Key: "INSTRUME", Value: "STIS"},
		{Key: "ROOTNAME", Value: "jbk802010"}, {Key: "FILETYPE", Value: "SCI"},
		{Key: "EXPTIME", Value: 1200.5, Comment: "exposure duration (seconds)"},
	}})
	w.fits(JWSTFile, Public, recent(26, 17),
		Image{Cards: []Card{
			{Key: "TELESCOP", Value: "JWST"}, {Key: "INSTRUME", Value: "NIRCAM"},
			{Key: "DETECTOR", Value: "NRCA1"}, {Key: "PROGRAM", Value: "01234"},
		}},
		Image{Extension: true, BITPIX: -32, Axes: []int{32, 32}, Cards: []Card{
			{Key: "EXTNAME", Value: "SCI"}, {Key: "EXTVER", Value: 1},
			{Key: "BUNIT", Value: "MJy/sr"},
		}})
	w.fits(SpaceFile, Public, oldMisc, Image{BITPIX: 16, Axes: []int{16, 16}, Cards: []Card{
		{Key: "OBJECT", Value: "name with a space"},
	}})
	w.fits(UnicodeFile, Public, recent(49, 3), Image{BITPIX: 8, Axes: []int{10, 10}, Cards: []Card{
		{Key: "OBJECT", Value: "non-ASCII file name"},
	}})
	w.link(LinkFile, LinkTarget, Public, recent(27, 0))
	w.dir(AnonDir+"/nested", Public, oldDirs)
	w.dir(AnonDir+"/nested/deeper", Public, oldDirs)
	w.fits(NestedFile, Public, oldMisc, Image{BITPIX: 32, Axes: []int{8, 8}})
	w.dir(AnonDir+"/large", Public, recent(28, 0))
	w.large(LargeFile, o.LargeSize, recent(28, 5))
	if o.ManyFiles > 0 {
		w.dir(ManyDir, Public, oldMany)
		for i := range o.ManyFiles {
			p := fmt.Sprintf("%s/mast_%05d.fits", ManyDir, i)
			w.fits(p, Public, oldMany.Add(time.Duration(i)*37*time.Minute), Image{Cards: []Card{
				{Key: "OBJECT", Value: fmt.Sprintf("many %05d", i)},
			}})
		}
	}

	w.dir(AnonDir2, Public, recent(75, 0))
	w.fits(AnonDir2+"/hst_12345_01_wfc3_uvis_f606w_drz.fits", Public, oldHST.Add(48*time.Hour),
		Image{BITPIX: -32, Axes: []int{40, 30}, Cards: []Card{{Key: "TELESCOP", Value: "HST"}}})
	w.raw(AnonDir2+"/README.txt", Public, oldMisc, []byte("Second anonymous stage: a text file, an empty file and an image.\n"))
	w.raw(EmptyFile, Public, recent(80, 0), nil)

	w.dir(u, Public, oldDirs)
	w.dir(w.s.UserDir, UserOnly, recent(31, 0))
	w.fits(w.s.UserFile, UserOnly, recent(31, 9), Image{BITPIX: 16, Axes: []int{24, 24}, Cards: []Card{
		{Key: "PROPRIET", Value: true, Comment: "exclusive access"},
	}})
	w.dir(w.s.UserDir+"/sub", UserOnly, oldDirs)
	w.fits(w.s.UserDir+"/sub/more.fits", UserOnly, oldMisc, Image{})

	w.dir(OtherUser, Public, oldDirs)
	w.dir(w.s.OtherDir, NoOne, oldDirs)
	w.fits(w.s.OtherDir+"/bob.fits", NoOne, oldMisc, Image{})

	w.dir(PrivateDir, NoOne, oldDirs)
	w.fits(SecretFile, NoOne, oldMisc, Image{BITPIX: 8, Axes: []int{4}})
}

// stageWriter writes entries and records them; the first error sticks.
type stageWriter struct {
	s     *Stage
	seed  uint64
	holes bool // write blocks of zeros as holes (science.go)
	err   error
}

func (w *stageWriter) record(f *File) {
	w.s.Files = append(w.s.Files, f)
	w.s.byPath[f.Path] = f
}

func (w *stageWriter) dir(p string, a Access, mt time.Time) {
	if w.err != nil {
		return
	}
	w.err = os.MkdirAll(w.s.Local(p), 0o755)
	w.record(&File{Path: p, Mode: fs.ModeDir | dirPerm(a), ModTime: mt, Access: a})
}

func (w *stageWriter) link(p, target string, a Access, mt time.Time) {
	if w.err != nil {
		return
	}
	local := w.s.Local(p)
	_ = os.Remove(local)
	w.err = os.Symlink(target, local)
	w.record(&File{Path: p, Mode: fs.ModeSymlink | 0o777, Size: int64(len(target)),
		Target: target, ModTime: mt, Access: a})
}

func (w *stageWriter) raw(p string, a Access, mt time.Time, data []byte) {
	w.write(p, a, mt, func(dst io.Writer) error {
		_, err := dst.Write(data)
		return err
	})
}

func (w *stageWriter) fits(p string, a Access, mt time.Time, hdus ...Image) {
	for i := range hdus {
		if hdus[i].Data == nil && hdus[i].DataSize() > 0 {
			hdus[i].Data = pixels(w.rng(fmt.Sprintf("%s#%d", p, i)), hdus[i].BITPIX, hdus[i].DataSize())
		}
	}
	w.write(p, a, mt, func(dst io.Writer) error {
		_, err := WriteFITS(dst, hdus...)
		return err
	})
}

// large writes a BITPIX=16 image whose file is size rounded down to whole
// blocks: one header block, then rows of 1440 pixels (one block each). The
// pixels are an AES-CTR keystream (any bytes are valid 16-bit pixels), and
// the digest is computed beside the writing: a 1 GiB file costs about what
// SHA-256 of 1 GiB costs.
func (w *stageWriter) large(p string, size int64, mt time.Time) {
	rows := size/BlockSize - 1
	if rows < 1 {
		rows = 1
	}
	key := sha256.Sum256([]byte(fmt.Sprintf("%d\x00%s", w.seed, p)))
	block, err := aes.NewCipher(key[:16])
	if err != nil {
		w.err = err
		return
	}
	im := Image{BITPIX: 16, Axes: []int{BlockSize / 2, int(rows)}, Cards: []Card{
		{Key: "OBJECT", Value: "large pseudo-random image"},
	}}
	im.Data = cipher.StreamReader{S: cipher.NewCTR(block, make([]byte, aes.BlockSize)), R: zeros{}}
	w.writeWith(p, Public, mt, newPipeHash(), func(dst io.Writer) error {
		_, err := WriteFITS(dst, im)
		return err
	})
}

func (w *stageWriter) write(p string, a Access, mt time.Time, fill func(io.Writer) error) {
	w.writeWith(p, a, mt, plainHash{sha256.New()}, fill)
}

func (w *stageWriter) writeWith(p string, a Access, mt time.Time, h summer, fill func(io.Writer) error) {
	if w.err != nil {
		return
	}
	local := w.s.Local(p)
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		w.err = err
		return
	}
	f, err := os.OpenFile(local, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		w.err = err
		return
	}
	out := io.WriteCloser(f)
	if w.holes {
		out = &sparseFile{f: f}
	}
	cw := &countWriter{w: io.MultiWriter(out, h)}
	err = fill(cw)
	sum := h.Sum()
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		w.err = fmt.Errorf("write %s: %w", p, err)
		return
	}
	w.record(&File{Path: p, Mode: 0o644, Size: cw.n, SHA256: hex.EncodeToString(sum),
		ModTime: mt, Access: a})
}

// rng is a ChaCha8 stream keyed by the seed and the entry's path, so each
// file's bytes do not depend on the order files are written in.
func (w *stageWriter) rng(key string) *rand.ChaCha8 {
	var seed [32]byte
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d\x00%s", w.seed, key)))
	copy(seed[:], sum[:])
	return rand.NewChaCha8(seed)
}

// pixels returns n bytes of big-endian pixel data. Float images get finite
// values (random bits could spell NaN); integer images take raw bytes.
func pixels(src *rand.ChaCha8, bitpix int, n int64) io.Reader {
	buf := make([]byte, n)
	switch bitpix {
	case -32:
		r := rand.New(src)
		for i := 0; i+4 <= len(buf); i += 4 {
			binary.BigEndian.PutUint32(buf[i:], math.Float32bits(float32(r.Float64()*1000)))
		}
	case -64:
		r := rand.New(src)
		for i := 0; i+8 <= len(buf); i += 8 {
			binary.BigEndian.PutUint64(buf[i:], math.Float64bits(r.Float64()*1000))
		}
	default:
		_, _ = src.Read(buf)
	}
	return bytes.NewReader(buf)
}

// finish sets permissions and times once every entry exists: creating a
// child changes its directory's mtime, so directories go last.
func (w *stageWriter) finish() {
	for _, f := range w.s.Files {
		if w.err != nil {
			return
		}
		local := w.s.Local(f.Path)
		switch {
		case f.IsLink():
			w.err = lutimes(local, f.ModTime)
		case f.IsDir():
			w.err = os.Chmod(local, f.Mode.Perm())
		default:
			if w.err = os.Chmod(local, f.Mode.Perm()); w.err == nil {
				w.err = os.Chtimes(local, f.ModTime, f.ModTime)
			}
		}
	}
	if w.err == nil {
		w.err = os.Chmod(w.s.Root, 0o755)
	}
	for _, f := range w.s.Files {
		if f.IsDir() && w.err == nil {
			w.err = os.Chtimes(w.s.Local(f.Path), f.ModTime, f.ModTime)
		}
	}
}

// dirPerm: others' stages and private/ are closed to all but root, which
// no FTP session runs as. The account's stage is closed too until a test server
// hands it over (and makes it read-only to the account as well).
func dirPerm(a Access) fs.FileMode {
	if a == Public {
		return 0o755
	}
	return 0o700
}
