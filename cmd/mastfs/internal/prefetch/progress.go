// Package prefetch reads files of a mount through to their end, so that
// the mount caches them, and shows how far it got.
package prefetch

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mastfs/cmd/internal/human"
)

// Progress counts the bytes and files of a long job and shows them: a bar
// redrawn in place on a terminal, or a plain line now and then otherwise.
type Progress struct {
	total int64 // bytes to do
	files int   // files to do
	start time.Time

	done      atomic.Int64 // bytes done
	filesDone atomic.Int64 // files done, read or failed

	mu      sync.Mutex // guards out, samples, drawn, last
	out     io.Writer
	tty     bool
	width   func() int // terminal columns
	samples []sample   // recent (time, bytes) pairs, for the rate
	drawn   bool       // a bar is on the current line
	last    time.Time  // of the last plain progress line

	stop chan struct{}
	wg   sync.WaitGroup
}

type sample struct {
	t time.Time
	n int64
}

// rateWindow is how far back the rate looks: long enough to smooth bursts
// of cached chunks, short enough to follow a change of speed.
const rateWindow = 5 * time.Second

// NewProgress starts showing the progress of reading files holding total
// bytes on out: a bar redrawn every 200 ms when tty, else a line every
// 10 s; width gives the terminal's columns.
func NewProgress(out io.Writer, tty bool, width func() int, total int64, files int) *Progress {
	p := &Progress{total: total, files: files, start: time.Now(), out: out, tty: tty, width: width,
		stop: make(chan struct{})}
	p.samples = []sample{{p.start, 0}}
	p.last = p.start
	p.wg.Add(1)
	go p.tick()
	return p
}

// Add counts n bytes read.
func (p *Progress) Add(n int) { p.done.Add(int64(n)) }

// FileDone counts one file finished, read or failed.
func (p *Progress) FileDone() { p.filesDone.Add(1) }

// Done is the bytes and files counted so far.
func (p *Progress) Done() (bytes, files int64) { return p.done.Load(), p.filesDone.Load() }

// Elapsed is the time since the start.
func (p *Progress) Elapsed() time.Duration { return time.Since(p.start) }

func (p *Progress) tick() {
	defer p.wg.Done()
	every := 10 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	t := time.NewTicker(min(every, time.Second))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			p.mu.Lock()
			p.sampleLocked(now)
			if p.tty {
				p.drawLocked()
			} else if now.Sub(p.last) >= every {
				p.last = now
				fmt.Fprintf(p.out, "progress: %s\n", p.lineLocked())
			}
			p.mu.Unlock()
		}
	}
}

func (p *Progress) sampleLocked(now time.Time) {
	p.samples = append(p.samples, sample{now, p.done.Load()})
	for len(p.samples) > 2 && now.Sub(p.samples[1].t) >= rateWindow {
		p.samples = p.samples[1:]
	}
}

// rateLocked is bytes per second over the recent window.
func (p *Progress) rateLocked() float64 {
	first, last := p.samples[0], p.samples[len(p.samples)-1]
	if d := last.t.Sub(first.t).Seconds(); d > 0 {
		return float64(last.n-first.n) / d
	}
	return 0
}

func (p *Progress) lineLocked() string {
	return progressText(p.done.Load(), p.total, p.rateLocked(), int(p.filesDone.Load()), p.files)
}

func (p *Progress) drawLocked() {
	fmt.Fprintf(p.out, "\r%s\x1b[K", renderBar(p.done.Load(), p.total, p.rateLocked(),
		int(p.filesDone.Load()), p.files, p.width()))
	p.drawn = true
}

// Println prints a line of its own, above the bar on a terminal.
func (p *Progress) Println(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.out, "\r\x1b[K")
		p.drawn = false
	}
	fmt.Fprintln(p.out, line)
	if p.tty {
		p.drawLocked()
	}
}

// Finish stops the updates, leaving a last full bar on a terminal.
func (p *Progress) Finish() {
	close(p.stop)
	p.wg.Wait()
	if p.tty {
		p.mu.Lock()
		now := time.Now()
		p.sampleLocked(now)
		p.drawLocked()
		fmt.Fprintln(p.out)
		p.mu.Unlock()
	}
}

// progressText is the figures of a progress line: percent, bytes, rate, ETA, files.
func progressText(done, total int64, rate float64, filesDone, files int) string {
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	return fmt.Sprintf("%3.0f%% %s / %s  %s/s  ETA %s  %d/%d files", pct, human.Bytes(done), human.Bytes(total),
		human.Bytes(int64(rate)), eta(total-done, rate), filesDone, files)
}

// barText is the room kept for the figures beside the bar, so that the bar
// keeps its length while they change.
const barText = 64

// renderBar fits "[=====>    ]" and the figures into width columns; the bar
// goes when there is no room for it.
func renderBar(done, total int64, rate float64, filesDone, files, width int) string {
	text := progressText(done, total, rate, filesDone, files)
	room := min(width-barText, 40)
	if room < 10 {
		return text
	}
	fill := room
	if total > 0 {
		fill = int(int64(room) * min(done, total) / total)
	}
	bar := strings.Repeat("=", fill)
	if fill < room {
		bar += ">" + strings.Repeat(" ", room-fill-1)
	}
	return "[" + bar + "] " + text
}

// eta is the time left at rate, or "--" while the rate is unknown.
func eta(left int64, rate float64) string {
	switch {
	case left <= 0:
		return "0s"
	case rate <= 0:
		return "--"
	}
	return human.Duration(time.Duration(float64(left) / rate * float64(time.Second)))
}
