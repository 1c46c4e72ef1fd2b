package benchtree

import (
	"io"
	"math/rand/v2"
)

// The content generators are endless readers; callers take what they need
// with io.CopyN.

// vocabulary is 4096 words of one to three syllables. Text drawn from it
// with a skewed (cubic) distribution compresses about as well as source
// code or logs: roughly 3x with gzip -6.
var vocabulary = func() [][]byte {
	syllables := []string{"ka", "to", "ri", "ne", "su", "mo", "la", "pe", "di", "gu", "ba", "ve", "chi", "no", "ra", "sel"}
	words := make([][]byte, 4096)
	for i := range words {
		s := syllables[i%16]
		if i >= 16 {
			s += syllables[i/16%16]
		}
		if i >= 256 {
			s += syllables[i/256%16]
		}
		words[i] = []byte(s)
	}
	return words
}()

// textReader yields words separated by spaces, commas and newlines.
type textReader struct {
	rng     *rand.Rand
	pending []byte // the rest of a word that did not fit the last Read
	scratch [16]byte
}

func textSource(rng *rand.Rand) io.Reader { return &textReader{rng: rng} }

func (t *textReader) Read(p []byte) (int, error) {
	n := copy(p, t.pending)
	t.pending = t.pending[n:]
	for n < len(p) {
		v := t.rng.Uint32()
		f := float64(v>>16) / 65536
		word := append(t.scratch[:0], vocabulary[int(f*f*f*float64(len(vocabulary)))]...)
		switch {
		case v%13 == 0:
			word = append(word, '\n')
		case v%7 == 0:
			word = append(word, ',', ' ')
		default:
			word = append(word, ' ')
		}
		c := copy(p[n:], word)
		n += c
		t.pending = word[c:]
	}
	return n, nil
}

// randomSource yields incompressible bytes.
func randomSource(rng *rand.Rand) io.Reader { return &randomReader{rng: rng} }

type randomReader struct{ rng *rand.Rand }

func (r *randomReader) Read(p []byte) (int, error) {
	i := 0
	for ; i+8 <= len(p); i += 8 {
		v := r.rng.Uint64()
		p[i], p[i+1], p[i+2], p[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		p[i+4], p[i+5], p[i+6], p[i+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
	}
	if i < len(p) {
		v := r.rng.Uint64()
		for ; i < len(p); i++ {
			p[i] = byte(v)
			v >>= 8
		}
	}
	return len(p), nil
}

// lowEntropySource yields bytes of a 16-symbol alphabet (4 bits a byte,
// about 2x with gzip).
func lowEntropySource(rng *rand.Rand) io.Reader { return lowEntropyReader{randomReader{rng}} }

type lowEntropyReader struct{ randomReader }

func (r lowEntropyReader) Read(p []byte) (int, error) {
	n, err := r.randomReader.Read(p)
	for i := range p[:n] {
		p[i] &= 0x0f
	}
	return n, err
}

// mixedReader alternates blocks of random bytes and of zeros, like a disk
// image with holes.
type mixedReader struct {
	rnd   io.Reader
	block int64
	off   int64
}

func (m *mixedReader) Read(p []byte) (int, error) {
	left := m.block - m.off%m.block
	if int64(len(p)) > left {
		p = p[:left]
	}
	var n int
	if m.off/m.block%2 == 0 {
		n, _ = m.rnd.Read(p)
	} else {
		n = len(p)
		clear(p)
	}
	m.off += int64(n)
	return n, nil
}

// zeroReader yields zeros.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
