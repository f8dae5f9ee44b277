package cache

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The benchmarks' far remote is the path users sit on: opening a stream
// costs 100 ms (REST, RETR and a TLS handshake over a long path; real ones
// cost more), and a stream carries 40 MB/s (a 4 MiB window per 100 ms round
// trip). "local" has neither cost and shows the cache's own overhead.
func benchRemote(far bool) *fakeRemote {
	r := newFake()
	if far {
		r.openDelay = 100 * time.Millisecond
		r.bytesPerSec = 40e6
	}
	return r
}

var benchChunks = []int64{256 << 10, 1 << 20, 4 << 20}

func benchCache(b *testing.B, r Remote, chunk int64, segments bool) *Cache {
	cfg := Config{Dir: b.TempDir(), ChunkSize: chunk, Logger: slog.New(slog.DiscardHandler)}
	if segments {
		cfg.StreamsPerFile = 4
	}
	c, err := Open(cfg, r)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// readFile reads k from start to end in 128 KiB reads, the size the kernel sends.
func readFile(b *testing.B, c *Cache, k Key, p []byte) {
	for off := int64(0); off < k.Size; off += int64(len(p)) {
		if _, err := c.ReadAt(context.Background(), k, p, off); err != nil && err != io.EOF {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadSequential reads a 64 MiB file end to end: cold (from the
// remote, far or local; over the far link also with four streams per file)
// and warm (from the cache, checked on an earlier read).
func BenchmarkReadSequential(b *testing.B) {
	for _, mode := range []string{"cold-far", "cold-far-4streams", "cold-local", "warm"} {
		for _, chunk := range benchChunks {
			b.Run(fmt.Sprintf("%s/chunk=%dKiB", mode, chunk>>10), func(b *testing.B) {
				r := benchRemote(strings.HasPrefix(mode, "cold-far"))
				k := r.add("/seq.fits", 64<<20, 1)
				c := benchCache(b, r, chunk, strings.HasSuffix(mode, "4streams"))
				p := make([]byte, 128<<10)
				if mode == "warm" {
					readFile(b, c, k, p)
				}
				opened := c.Stats().StreamsOpened
				b.SetBytes(k.Size)
				b.ResetTimer()
				for range b.N {
					if mode != "warm" {
						b.StopTimer()
						c.Forget("")
						b.StartTimer()
					}
					readFile(b, c, k, p)
				}
				b.StopTimer()
				b.ReportMetric(float64(c.Stats().StreamsOpened-opened)/float64(b.N), "streams/op")
			})
		}
	}
}

// BenchmarkReadRandom reads 128 KiB at random offsets of a 64 GiB file over
// the far link, each read cold: the cost of a chunk size to a random reader.
func BenchmarkReadRandom(b *testing.B) {
	for _, chunk := range benchChunks {
		b.Run(fmt.Sprintf("chunk=%dKiB", chunk>>10), func(b *testing.B) {
			r := benchRemote(true)
			k := r.add("/image.fits", 64<<30, 2)
			c := benchCache(b, r, chunk, false)
			p := make([]byte, 128<<10)
			x := uint64(12345)
			b.SetBytes(int64(len(p)))
			b.ResetTimer()
			for range b.N {
				x = x*6364136223846793005 + 1442695040888963407
				off := int64(x>>24) % (k.Size - int64(len(p))) &^ 4095
				if _, err := c.ReadAt(context.Background(), k, p, off); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(c.Stats().BytesFetched)/float64(b.N), "fetchedB/op")
		})
	}
}

// BenchmarkCPUPerGiB reads a 1 GiB file end to end, cold, from a remote
// with no latency and no bandwidth limit, and reports the CPU time (user
// plus system, the whole process, the fake remote's copying included) the
// read cost per GiB: what the cache itself spends on each byte.
func BenchmarkCPUPerGiB(b *testing.B) {
	const size = 1 << 30
	r := newFake()
	k := r.add("/big.fits", size, 3)
	cfg := Config{Dir: b.TempDir(), ChunkSize: 1 << 20, MaxBytes: 2 * size, Logger: slog.New(slog.DiscardHandler)}
	c, err := Open(cfg, r)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	p := make([]byte, 128<<10)
	b.SetBytes(size)
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		c.Forget("")
		before := cpuTime(b)
		b.StartTimer()
		readFile(b, c, k, p)
		b.StopTimer()
		cpu += cpuTime(b) - before
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/GiB")
}

// cpuTime returns the user plus system time the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSmallFiles reads 1,000 files of 20 KB each, whole and cold,
// from a remote with no latency: what the cache spends per small file
// (a cp -r of a directory of them), in time and CPU.
func BenchmarkSmallFiles(b *testing.B) {
	const files = 1000
	r := newFake()
	keys := make([]Key, files)
	for n := range keys {
		keys[n] = r.add(fmt.Sprintf("/small/%04d.fits", n), 20_000, uint64(n%8)) // few seeds: the fake makes a table per seed
	}
	c := benchCache(b, r, 1<<20, false)
	p := make([]byte, 128<<10)
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		c.Forget("")
		before := cpuTime(b)
		b.StartTimer()
		for _, k := range keys {
			readFile(b, c, k, p)
		}
		b.StopTimer()
		cpu += cpuTime(b) - before
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*files), "µs/file")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*files), "cpu-µs/file")
}
