package cache

// runsTracked is how many concurrent sequential runs one file keeps apart:
// several processes, or mmap beside read(2), can each read it in order.
const runsTracked = 4

// pattern classifies the reads of one file as sequential or random and
// sizes the read-ahead each sequential run has earned. It is per file, not
// per handle, so every reader of a file feeds the same classifier.
type pattern struct {
	chunk int64 // chunk size: the first window, and the unit of growth
	max   int64 // largest window
	runs  [runsTracked]run
	clock uint64
}

// run is one sequence of reads, each starting at or shortly after the
// previous one's end.
type run struct {
	end    int64  // end of the furthest read so far
	window int64  // read-ahead earned; 0 until the run proves sequential
	last   uint64 // clock at the last read, to replace the stalest run
	live   bool
}

func newPattern(chunk, max int64) pattern { return pattern{chunk: chunk, max: max} }

// observe records a read of [off, end) and returns the read-ahead window in
// bytes (0 for a random read) and whether the stream that serves the read
// should stay open a moment for a follow-up read.
//
// A read continues a run when it starts no more than a chunk before the
// run's end (the kernel's reads can arrive slightly out of order) and no
// further ahead than the run's window, so a forward skip within the window
// keeps the stream. The first continuation earns one chunk of window; it
// then doubles each time the run crosses into a new chunk, up to max.
func (p *pattern) observe(off, end int64) (window int64, linger bool) {
	p.clock++
	for k := range p.runs {
		r := &p.runs[k]
		if !r.live || off < r.end-p.chunk || off > r.end+max(r.window, p.chunk) {
			continue
		}
		r.last = p.clock
		if end <= r.end { // a re-read inside the run: no progress, no growth
			return r.window, r.window > 0
		}
		if r.window == 0 {
			r.window = min(p.chunk, p.max)
		} else if (end-1)/p.chunk > (r.end-1)/p.chunk {
			r.window = min(2*r.window, p.max)
		}
		r.end = end
		return r.window, true
	}
	stalest := 0
	for k := range p.runs {
		if !p.runs[k].live {
			stalest = k
			break
		}
		if p.runs[k].last < p.runs[stalest].last {
			stalest = k
		}
	}
	p.runs[stalest] = run{end: end, last: p.clock, live: true}
	// A read at the start of a file is how a sequential read begins.
	return 0, off == 0
}
