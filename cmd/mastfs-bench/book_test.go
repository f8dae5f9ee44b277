package bench

import (
	"math"
	"slices"
	"sync"
)

// Figures, as the results name them.
const (
	figCold     = "1 cold sequential read"
	figWarm     = "2 warm sequential read"
	figHeader   = "3 header read (2,880 bytes)"
	figAstropy  = "4 astropy header card + one pixel"
	figLsCold   = "5a ls -lR tree, cold"
	figLsWarm   = "5b ls -lR tree, warm"
	figLsMany   = "5c ls -l of the small-file dir"
	figCp       = "5d cp -r of the small-file dir"
	figOne      = "6a one reader of one part"
	figParallel = "6b 8 readers of 8 parts"

	// Issue 12: astronomers' access patterns on the science stage.
	figSciCp     = "9a cp of 200 small products (a glob)"
	figSciScan   = "9b header scan of 200 products (astropy loop)"
	figSciInfo   = "9c fits.info of the flt and the cal"
	figSciCutout = "9d SCI,2 cutout of the flt (memmap)"
	figSciLs     = "9e ls -lR tree, cold"

	// Issue 13: what the cache costs, and what it serves once full.
	figCPU        = "10a CPU per GiB, cold sequential read"
	figCPURate    = "10a′ cold sequential read beside the CPU count"
	figCpCold     = "10b cp -r of the small-file dir, fresh mount"
	figRemountCat = "10c cat of a wholly cached file after a remount"
	figRemountDD  = "10d dd bs=1M of a wholly cached file after a remount"
	figPixelLoop  = "10e astropy memmap loop over all pixels, wholly cached"
)

// sample is one measurement of one peer in one run.
type sample struct {
	Run   int     `json:"run"`
	Value float64 `json:"value"` // in the series' unit; meaningless unless OK
	OK    bool    `json:"ok"`
	Err   string  `json:"error,omitempty"`
	Cost  cost    `json:"cost"`
	RSS   int64   `json:"rss_bytes,omitempty"` // VmHWM of the FUSE server, mounts only
	// Asked is the bytes the reader asked for (figures 9): from its own
	// count (/proc/self/io rchar in the Python figures, plus the pixels a
	// cutout touches) or the sizes of the files it read whole.
	Asked int64 `json:"asked,omitempty"`
}

// series is every run of one figure for one peer at one place.
type series struct {
	Place   string   `json:"place"`
	Fig     string   `json:"figure"`
	Peer    string   `json:"peer"`
	Unit    string   `json:"unit"`
	Samples []sample `json:"samples"`
}

// stats summarises the successful samples of a series.
type stats struct {
	n, failed        int
	median, min, max float64
	firstErr         string
}

func (s *series) stats() stats {
	var vals []float64
	var st stats
	for _, x := range s.Samples {
		if x.OK {
			vals = append(vals, x.Value)
		} else {
			st.failed++
			if st.firstErr == "" {
				st.firstErr = x.Err
			}
		}
	}
	st.n = len(vals)
	st.median, st.min, st.max = summarize(vals)
	return st
}

// summarize returns the median, min and max, or NaNs for none.
func summarize(vals []float64) (median, lo, hi float64) {
	if len(vals) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	v := slices.Clone(vals)
	slices.Sort(v)
	n := len(v)
	median = v[n/2]
	if n%2 == 0 {
		median = (v[n/2-1] + v[n/2]) / 2
	}
	return median, v[0], v[n-1]
}

// byRun returns the successful values of a series by run number.
func (s *series) byRun() map[int]float64 {
	out := map[int]float64{}
	if s == nil {
		return out
	}
	for _, x := range s.Samples {
		if x.OK {
			out[x.Run] = x.Value
		}
	}
	return out
}

// book collects every series of a benchmark run, in the order first seen.
type book struct {
	mu     sync.Mutex // guards all
	all    []*series
	notes  []string
	params map[string]string
}

func (b *book) add(place, fig, peer, unit string, x sample) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.find(place, fig, peer)
	if s == nil {
		s = &series{Place: place, Fig: fig, Peer: peer, Unit: unit}
		b.all = append(b.all, s)
	}
	s.Samples = append(s.Samples, x)
}

func (b *book) find(place, fig, peer string) *series {
	for _, s := range b.all {
		if s.Place == place && s.Fig == fig && s.Peer == peer {
			return s
		}
	}
	return nil
}

func (b *book) get(place, fig, peer string) *series {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.find(place, fig, peer)
}

func (b *book) note(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.notes = append(b.notes, s)
}

// ratios pairs two groups of series run by run: the best of nums over
// the best of dens (best as better says), for every run in which each
// group has a success.
func ratios(nums, dens []*series, better func(a, b float64) bool) []float64 {
	pick := func(group []*series, run int) (float64, bool) {
		best, found := 0.0, false
		for _, s := range group {
			if v, ok := s.byRun()[run]; ok && (!found || better(v, best)) {
				best, found = v, true
			}
		}
		return best, found
	}
	runs := map[int]bool{}
	for _, s := range nums {
		for r := range s.byRun() {
			runs[r] = true
		}
	}
	var order []int
	for r := range runs {
		order = append(order, r)
	}
	slices.Sort(order)
	var out []float64
	for _, r := range order {
		n, ok1 := pick(nums, r)
		d, ok2 := pick(dens, r)
		if ok1 && ok2 && d != 0 {
			out = append(out, n/d)
		}
	}
	return out
}

func higher(a, b float64) bool { return a > b }
func lower(a, b float64) bool  { return a < b }
