package chunkstore

import (
	"os"
	"sync"
)

// Backing returns the data file of version k, open read-only, when every
// chunk of k is stored and has passed its crc check in this process (the
// chunks not yet checked are checked now). Until release is called the
// file is held: eviction punches no hole in it, and its bytes count
// against the bound even if the version is dropped meanwhile. release
// closes f; it may be called more than once.
func (s *Store) Backing(k Key) (f *os.File, release func(), ok bool) {
	s.mu.Lock()
	v := s.lookupLocked(k)
	if v == nil || !v.onDisk || v.nchunks == 0 || int64(len(v.chunks)) != v.nchunks {
		s.mu.Unlock()
		return nil, nil, false
	}
	f, err := os.Open(v.data)
	if err != nil {
		s.mu.Unlock()
		return nil, nil, false
	}
	s.holdLocked(v)
	unchecked := map[int64]*chunk{}
	for i, c := range v.chunks {
		if !c.verified {
			unchecked[i] = c
		}
	}
	s.mu.Unlock()
	release = sync.OnceFunc(func() {
		f.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.releaseLocked(v)
	})
	sp := s.scratch.Get().(*[]byte)
	defer s.scratch.Put(sp)
	for i, c := range unchecked {
		if err := readChecked(f, (*sp)[:s.chunkLen(v, i)], i*s.chunkSize, c.crc); err != nil {
			release()
			s.discard(v, i, c, "check", err)
			return nil, nil, false
		}
	}
	s.mu.Lock()
	intact := int64(len(v.chunks)) == v.nchunks
	for i, c := range unchecked {
		intact = intact && v.chunks[i] == c
	}
	for _, c := range unchecked {
		c.verified = c.verified || intact
	}
	s.mu.Unlock()
	if !intact {
		release()
		return nil, nil, false
	}
	return f, release, true
}

// holdLocked takes v's chunks out of the LRU while it is held.
func (s *Store) holdLocked(v *version) {
	v.held++
	if v.held > 1 {
		return
	}
	for i := range v.chunks {
		s.lru.Remove(ref{v, i})
	}
}

// releaseLocked gives v's chunks back to the LRU once no one holds it, as
// just used, and evicts what the bound no longer allows.
func (s *Store) releaseLocked(v *version) {
	v.held--
	if v.held > 0 {
		return
	}
	s.used -= v.gone
	v.gone = 0
	for i := range v.nchunks {
		if c := v.chunks[i]; c != nil {
			s.lru.Add(ref{v, i}, c)
		}
	}
	s.shrinkLocked(s.limit)
}
