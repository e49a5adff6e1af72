package poller

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"slices"
	"unicode/utf8"
)

// seed is fixed for the life of the process: every hash the poller compares
// (of items loaded from the mirror and of items just fetched) is made in the
// same process, so hashes never need to survive a restart.
var seed = maphash.MakeSeed()

// hasher computes the hash of an item's canonical JSON: object keys sorted,
// whitespace dropped, string escapes resolved. Key order and formatting thus
// never look like a change. It hashes as it scans, without building the
// canonical text. A hasher is not safe for concurrent use; each poller owns
// one and reuses its buffers.
type hasher struct {
	h       maphash.Hash
	members [][]member // scratch per nesting depth
}

type member struct {
	key        []byte
	start, end int
}

func newHasher() *hasher {
	hs := &hasher{}
	hs.h.SetSeed(seed)
	return hs
}

// Sum hashes raw, which must be valid JSON.
func (hs *hasher) Sum(raw []byte) (uint64, error) {
	hs.h.Reset()
	i := skipSpace(raw, 0)
	if i >= len(raw) {
		return 0, fmt.Errorf("poller: empty JSON")
	}
	end, err := hs.value(raw, i, 0)
	if err != nil {
		return 0, err
	}
	if skipSpace(raw, end) != len(raw) {
		return 0, fmt.Errorf("poller: trailing data after JSON value")
	}
	return hs.h.Sum64(), nil
}

// Type tags keep different token sequences from hashing alike.
const (
	tagObject = 'o'
	tagArray  = 'a'
	tagEnd    = 'e'
	tagString = 's'
	tagNumber = 'n'
	tagLit    = 'l'
	tagKey    = 'k'
)

func (hs *hasher) value(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, fmt.Errorf("poller: JSON cut short")
	}
	switch c := b[i]; {
	case c == '{':
		return hs.object(b, i, depth)
	case c == '[':
		hs.h.WriteByte(tagArray)
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			hs.h.WriteByte(tagEnd)
			return i + 1, nil
		}
		for {
			end, err := hs.value(b, i, depth+1)
			if err != nil {
				return end, err
			}
			i = skipSpace(b, end)
			if i >= len(b) {
				return i, fmt.Errorf("poller: JSON array cut short")
			}
			if b[i] == ']' {
				hs.h.WriteByte(tagEnd)
				return i + 1, nil
			}
			i = skipSpace(b, i+1)
		}
	case c == '"':
		end := skipString(b, i)
		s, err := unquote(b[i:end])
		if err != nil {
			return end, err
		}
		hs.h.WriteByte(tagString)
		writeLen(&hs.h, len(s))
		hs.h.Write(s)
		return end, nil
	default:
		end := skipScalar(b, i)
		if c == '-' || (c >= '0' && c <= '9') {
			hs.h.WriteByte(tagNumber)
		} else {
			hs.h.WriteByte(tagLit)
		}
		writeLen(&hs.h, end-i)
		hs.h.Write(b[i:end])
		return end, nil
	}
}

func (hs *hasher) object(b []byte, i, depth int) (int, error) {
	for len(hs.members) <= depth {
		hs.members = append(hs.members, nil)
	}
	ms := hs.members[depth][:0]
	i = skipSpace(b, i+1)
	end := -1
	if i < len(b) && b[i] == '}' {
		end = i + 1
	}
	for end < 0 {
		if i >= len(b) || b[i] != '"' {
			return i, fmt.Errorf("poller: JSON object key expected")
		}
		keyEnd := skipString(b, i)
		key, err := unquote(b[i:keyEnd])
		if err != nil {
			return keyEnd, err
		}
		i = skipSpace(b, keyEnd)
		i = skipSpace(b, i+1) // the colon
		vEnd := skipValue(b, i)
		ms = append(ms, member{key: key, start: i, end: vEnd})
		i = skipSpace(b, vEnd)
		if i >= len(b) {
			return i, fmt.Errorf("poller: JSON object cut short")
		}
		if b[i] == '}' {
			end = i + 1
			break
		}
		i = skipSpace(b, i+1)
	}
	if !slices.IsSortedFunc(ms, compareKeys) {
		slices.SortStableFunc(ms, compareKeys)
	}
	hs.members[depth] = ms // keep the grown buffer for the next object
	hs.h.WriteByte(tagObject)
	for k := range ms {
		m := hs.members[depth][k]
		hs.h.WriteByte(tagKey)
		writeLen(&hs.h, len(m.key))
		hs.h.Write(m.key)
		if _, err := hs.value(b, m.start, depth+1); err != nil {
			return m.end, err
		}
	}
	hs.h.WriteByte(tagEnd)
	return end, nil
}

func compareKeys(a, b member) int { return bytes.Compare(a.key, b.key) }

func writeLen(h *maphash.Hash, n int) {
	var buf [4]byte
	buf[0], buf[1], buf[2], buf[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	h.Write(buf[:])
}

// unquote returns a JSON string's content, resolving escapes only when there
// are any (rare in API data, so the common path allocates nothing).
func unquote(quoted []byte) ([]byte, error) {
	if len(quoted) < 2 || quoted[len(quoted)-1] != '"' {
		return nil, fmt.Errorf("poller: JSON string cut short")
	}
	inner := quoted[1 : len(quoted)-1]
	// Invalid UTF-8 takes the slow path too: decoding turns it into U+FFFD,
	// as every JSON decoder downstream will.
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return inner, nil
	}
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return nil, fmt.Errorf("poller: bad JSON string: %w", err)
	}
	return []byte(s), nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

func skipScalar(b []byte, i int) int {
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default:
		return skipScalar(b, i)
	}
}
