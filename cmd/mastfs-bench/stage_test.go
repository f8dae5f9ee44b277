package bench

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mastfs/ftps/ftpstest"
	"mastfs/ftps/stagegen"
)

// Places in the benchmark stage, relative to the stage root. Everything is
// under the anonymous stage directory, which every peer mounts as its root.
const (
	stageDir  = stagegen.AnonDir
	largeRel  = "large/large.fits" // relative to stageDir
	manyRel   = "many"
	treeRel   = "tree"
	partsRel  = "parts"
	parallelN = 8 // readers in figure 6; one more part is read alone
)

// stage is the generated stage and the record of its contents.
type stage struct {
	*stagegen.Stage
	root      string            // local directory of stageDir
	sums      map[string]string // sha256 by path relative to root, for every regular file
	sizes     map[string]int64
	largeSize int64
	parts     []string // relative paths of the parts, parallelN+1 of them
	partSize  int64
	manyFiles int
	treeFiles int // regular files in the tree
	treeDirs  int
}

// writeStage writes the default MAST-like stage with a large file and a
// directory of small files, then adds the parts read in parallel and a
// nested tree. Pseudo-random contents come from seeded generators, so
// every run serves the same bytes.
func writeStage(t *testing.T, sz sizes) *stage {
	t.Helper()
	begin := time.Now()
	st := ftpstest.NewStage(t, stagegen.StageOptions{LargeSize: sz.large, ManyFiles: sz.many, Seed: 5})
	if err := st.AddScience(path.Join(stageDir, sciRel), stagegen.ScienceOptions{}, 12); err != nil {
		t.Fatal(err)
	}
	s := &stage{Stage: st, root: st.Local(stageDir), sums: map[string]string{}, sizes: map[string]int64{},
		partSize: sz.part, manyFiles: sz.many}
	for _, f := range st.Files {
		if f.Mode.IsRegular() {
			if rel, ok := cutDir(f.Path, stageDir); ok {
				s.sums[rel], s.sizes[rel] = f.SHA256, f.Size
			}
		}
	}
	s.largeSize = s.sizes[largeRel]
	if s.largeSize == 0 {
		t.Fatalf("stage has no %s", largeRel)
	}
	for i := 0; i <= parallelN; i++ {
		rel := fmt.Sprintf("%s/part_%02d.fits", partsRel, i)
		if err := s.writeRandom(rel, sz.part, uint64(100+i)); err != nil {
			t.Fatal(err)
		}
		s.parts = append(s.parts, rel)
	}
	if err := s.writeTree(sz.treeDirs, sz.treeSubdirs, sz.treeFiles); err != nil {
		t.Fatal(err)
	}
	t.Logf("stage written in %v: %s (%d MiB large file, %d parts of %d MB, %d small files, tree of %d dirs and %d files)",
		time.Since(begin).Round(time.Millisecond), s.root, s.largeSize>>20, len(s.parts), s.partSize/1e6,
		s.manyFiles, s.treeDirs, s.treeFiles)
	return s
}

func cutDir(p, dir string) (string, bool) {
	if len(p) > len(dir)+1 && p[:len(dir)] == dir && p[len(dir)] == '/' {
		return p[len(dir)+1:], true
	}
	return "", false
}

// writeRandom writes size bytes from a ChaCha8 stream keyed by seed.
func (s *stage) writeRandom(rel string, size int64, seed uint64) error {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	return s.writeFile(rel, func(w io.Writer) error {
		_, err := io.CopyN(w, rand.NewChaCha8(key), size)
		return err
	})
}

// writeFile writes one world-readable file (vsftpd serves anonymous users
// only those) and records its digest.
func (s *stage) writeFile(rel string, fill func(io.Writer) error) error {
	local := filepath.Join(s.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(local, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	err = fill(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	st, err := os.Stat(local)
	if err != nil {
		return err
	}
	s.sums[rel], s.sizes[rel] = hex.EncodeToString(h.Sum(nil)), st.Size()
	return nil
}

// writeTree writes tree/prog_NN/visit_NN/exp_NNN.fits: dirs programs, each
// with subdirs visits, each with files one-block FITS files.
func (s *stage) writeTree(dirs, subdirs, files int) error {
	old := time.Date(2023, 4, 5, 6, 7, 8, 0, time.UTC)
	for d := 0; d < dirs; d++ {
		for v := 0; v < subdirs; v++ {
			for f := 0; f < files; f++ {
				rel := fmt.Sprintf("%s/prog_%02d/visit_%02d/exp_%03d_cal.fits", treeRel, d, v, f)
				cards := []stagegen.Card{
					{Key: "TELESCOP", Value: "JWST"},
					{Key: "PROGRAM", Value: fmt.Sprintf("%05d", 1000+d)},
					{Key: "VISIT", Value: v},
					{Key: "EXPOSURE", Value: f},
				}
				if err := s.writeFile(rel, func(w io.Writer) error {
					_, err := stagegen.WriteFITS(w, stagegen.Image{Cards: cards})
					return err
				}); err != nil {
					return err
				}
				_ = os.Chtimes(filepath.Join(s.root, filepath.FromSlash(rel)), old, old)
				s.treeFiles++
			}
		}
	}
	s.treeDirs = 1 + dirs + dirs*subdirs
	return nil
}

// treeSize is the bytes of the tree's regular files, for checking listings.
func (s *stage) treeSize() int64 {
	var n int64
	for rel, size := range s.sizes {
		if ok, _ := path.Match(treeRel+"/*/*/*", rel); ok {
			n += size
		}
	}
	return n
}

// check compares a local file (usually on a mount) with the stage record,
// reading it whole, within limit.
func (s *stage) check(local, rel string, limit time.Duration) error {
	want, ok := s.sums[rel]
	if !ok {
		return fmt.Errorf("%s: not in the stage record", rel)
	}
	type result struct {
		sum string
		n   int64
		err error
	}
	ch := make(chan result, 1)
	go func() {
		f, err := os.Open(local)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
		ch <- result{hex.EncodeToString(h.Sum(nil)), n, err}
	}()
	select {
	case r := <-ch:
		switch {
		case r.err != nil:
			return fmt.Errorf("check %s: read after %d bytes: %w", rel, r.n, r.err)
		case r.sum != want:
			return fmt.Errorf("check %s: wrong bytes: sha256 %.12s… of %d bytes, want %.12s… of %d",
				rel, r.sum, r.n, want, s.sizes[rel])
		}
		return nil
	case <-time.After(limit):
		return fmt.Errorf("check %s: %w (%v)", rel, errTimeout, limit)
	}
}

// checkPrefix compares got with the first len(want) bytes of a stage file.
func (s *stage) checkPrefix(rel string, got []byte, n int) error {
	f, err := os.Open(filepath.Join(s.root, filepath.FromSlash(rel)))
	if err != nil {
		return err
	}
	defer f.Close()
	want := make([]byte, n)
	if _, err := io.ReadFull(f, want); err != nil {
		return err
	}
	if string(got) != string(want) {
		return fmt.Errorf("first %d bytes of %s: got %d bytes that differ from the stage", n, rel, len(got))
	}
	return nil
}

// lsCounts counts the regular files, their bytes and the directories an
// ls -l or ls -lR printed.
func lsCounts(out []byte) (files int, bytes int64, dirs int) {
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 {
			continue
		}
		switch line[0] {
		case '-':
			files++
			n, _ := strconv.ParseInt(f[4], 10, 64)
			bytes += n
		case 'd':
			dirs++
		}
	}
	return files, bytes, dirs
}

// checkLsTree compares ls -lR of the tree with the stage.
func (s *stage) checkLsTree(out []byte) error {
	files, bytes, dirs := lsCounts(out)
	if files != s.treeFiles || bytes != s.treeSize() || dirs != s.treeDirs-1 {
		return fmt.Errorf("ls -lR showed %d files of %d bytes in %d dirs, want %d files of %d bytes in %d dirs",
			files, bytes, dirs, s.treeFiles, s.treeSize(), s.treeDirs-1)
	}
	return nil
}

// checkLsMany compares ls -l of the small-file directory with the stage.
func (s *stage) checkLsMany(out []byte) error {
	if files, _, _ := lsCounts(out); files != s.manyFiles {
		return fmt.Errorf("ls -l showed %d files, want %d", files, s.manyFiles)
	}
	return nil
}

// checkCopy compares a copy of the small-file directory with the stage.
func (s *stage) checkCopy(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) != s.manyFiles {
		return fmt.Errorf("copy holds %d files, want %d", len(ents), s.manyFiles)
	}
	for _, ent := range ents {
		rel := manyRel + "/" + ent.Name()
		b, err := os.ReadFile(filepath.Join(dir, ent.Name()))
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != s.sums[rel] {
			return fmt.Errorf("copy of %s: wrong bytes (%d bytes)", rel, len(b))
		}
	}
	return nil
}
