package plan

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"slices"
	"sync/atomic"
	"unicode/utf8"
)

// The hashes are stored with each mirror entry (HashHeader), so that a
// start reads no values: they must come out the same in every process and
// every version that reads them, which rules out hash/maphash and its
// per-process seed. sum64 is a function of the bytes, their length and a
// key. The key is the deployment's (UseHashKey, kept in NATS by the
// bridge): a fixed public function would let anyone who writes an item's
// fields craft an edit that hashes like the state before it, an update the
// bridge would never see; with a secret key that takes guessing the key.
// Most of what an item hashes (keys, numbers, short strings) is a word or
// two, read as overlapping words and folded in with mix (a bijection in
// either argument); longer input runs four lanes at once, as XXH64 does.
// Changing the function means a new HashVersion.
func sum64(b []byte) uint64 {
	k := hashKey.Load()
	n := len(b)
	switch {
	case n > 32:
		return sumLong(b, k)
	case n > 16:
		h := mix(word(b)^k[0], uint64(n)^k[1])
		h = mix(h, word(b[8:]))
		h = mix(h, word(b[n-16:]))
		return mix(h, word(b[n-8:]))
	case n > 8:
		return mix(mix(word(b)^k[0], uint64(n)^k[1]), word(b[n-8:]))
	case n >= 4:
		return mix(uint64(binary.LittleEndian.Uint32(b))|uint64(binary.LittleEndian.Uint32(b[n-4:]))<<32^k[0], uint64(n)^k[1])
	case n > 0:
		return mix(uint64(b[0])|uint64(b[n/2])<<8|uint64(b[n-1])<<16^k[0], uint64(n)^k[1])
	}
	return mix(k[0], k[1])
}

func word(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

const (
	lane1 uint64 = 0x9e3779b185ebca87
	lane2 uint64 = 0xc2b2ae3d27d4eb4f
)

func laneRound(acc, w uint64) uint64 { return bits.RotateLeft64(acc+w*lane2, 31) * lane1 }

func sumLong(all []byte, k *[2]uint64) uint64 {
	n, b := len(all), all
	v1, v2, v3, v4 := k[0]^lane1, k[1]^lane2, k[0]+lane2, k[1]-lane1
	for len(b) >= 32 {
		v1 = laneRound(v1, word(b))
		v2 = laneRound(v2, word(b[8:]))
		v3 = laneRound(v3, word(b[16:]))
		v4 = laneRound(v4, word(b[24:]))
		b = b[32:]
	}
	h := mix(mix(mix(v1, v2), mix(v3, v4)), uint64(n)^k[0])
	for len(b) >= 8 {
		h = mix(h, word(b))
		b = b[8:]
	}
	if len(b) > 0 {
		// The last word overlaps what came before; the length is in h.
		h = mix(h, word(all[n-8:]))
	}
	return h
}

// hashKey is the key of every hash this process makes: random until
// UseHashKey sets the deployment's, so that no process hashes with a key
// anyone could know.
var hashKey atomic.Pointer[[2]uint64]

func init() {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("plan: no randomness for the hash key: " + err.Error())
	}
	hashKey.Store(&[2]uint64{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])})
}

// HashKey is the key hashes are made with now.
func HashKey() [2]uint64 { return *hashKey.Load() }

// UseHashKey makes every hash from now on with key: the deployment's, read
// from NATS at start (publisher.HashKey), so that hashes stored by one
// replica are those another one computes. Hashes made before with another
// key are merely taken for changed, and compared against the stored item
// before anything is published.
func UseHashKey(key [2]uint64) { hashKey.Store(&key) }

// keyFingerprint names the key in HashHeader without giving it away, so
// that hashes made with another key are not taken for this one's.
func keyFingerprint(k [2]uint64) uint32 { return uint32(mix(k[0]^0x5bd1e9955bd1e995, k[1]) >> 32) }

// hasher computes the hash of an item's canonical JSON: object keys in any
// order, whitespace dropped, string escapes resolved. Key order and
// formatting thus never look like a change. It hashes as it scans, without
// building the canonical text or sorting keys: an object's hash combines
// its members' hashes with addition, which does not depend on their order.
// A hasher is cheap and holds no buffers; it is not shared between
// goroutines only to keep the door open for scratch space.
type hasher struct{}

func newHasher() *hasher { return &hasher{} }

// Hash is the hash of raw's canonical JSON (rule 2 of change detection:
// key order and whitespace never make an update). raw must be valid JSON.
func Hash(raw []byte) (uint64, error) { return newHasher().Sum(raw) }

// RawHash hashes the bytes as they are: equal bytes are certainly the same
// item state, and this is far cheaper than the canonical hash.
func RawHash(b []byte) uint64 { return sum64(b) }

// Sum hashes raw, which must be valid JSON.
func (hs *hasher) Sum(raw []byte) (uint64, error) {
	i := skipSpace(raw, 0)
	if i >= len(raw) {
		return 0, fmt.Errorf("plan: empty JSON")
	}
	h, end, err := hs.value(raw, i)
	if err != nil {
		return 0, err
	}
	if skipSpace(raw, end) != len(raw) {
		return 0, fmt.Errorf("plan: trailing data after JSON value")
	}
	return h, nil
}

// Type tags keep values of different kinds from hashing alike: "1" and 1
// hash the same bytes, then differ by their tags.
const (
	tagObject  uint64 = 0x8f1bbcdcca62c1d6
	tagArray   uint64 = 0x5a827999ed9eba14
	tagString  uint64 = 0x6ed9eba18f1bbcdc
	tagNumber  uint64 = 0xca62c1d65a827999
	tagLiteral uint64 = 0x3c6ef372fe94f82b
	tagMember  uint64 = 0xa54ff53a5f1d36f1
)

// mix combines two 64-bit values into one (the splitmix64 finaliser over
// a seeded sum), so that mix(a, b) != mix(b, a).
func mix(a, b uint64) uint64 {
	x := a*0x9e3779b97f4a7c15 + b + 0x632be59bd9b4e019
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func (hs *hasher) value(b []byte, i int) (uint64, int, error) {
	if i >= len(b) {
		return 0, i, fmt.Errorf("plan: JSON cut short")
	}
	switch c := b[i]; {
	case c == '{':
		return hs.object(b, i)
	case c == '[':
		h := tagArray
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return h, i + 1, nil
		}
		for {
			vh, end, err := hs.value(b, i)
			if err != nil {
				return 0, end, err
			}
			h = mix(h, vh)
			i = skipSpace(b, end)
			if i >= len(b) {
				return 0, i, fmt.Errorf("plan: JSON array cut short")
			}
			if b[i] == ']' {
				return h, i + 1, nil
			}
			i = skipSpace(b, i+1)
		}
	case c == '"':
		end, plain := scanString(b, i)
		s, err := unquote(b[i:end], plain)
		if err != nil {
			return 0, end, err
		}
		return sum64(s) ^ tagString, end, nil
	default:
		end := skipScalar(b, i)
		tag := tagLiteral
		if c == '-' || (c >= '0' && c <= '9') {
			tag = tagNumber
		}
		return sum64(b[i:end]) ^ tag, end, nil
	}
}

func (hs *hasher) object(b []byte, i int) (uint64, int, error) {
	var sum uint64
	n := uint64(0)
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return mix(tagObject, 0), i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, i, fmt.Errorf("plan: JSON object key expected")
		}
		keyEnd, plain := scanString(b, i)
		key, err := unquote(b[i:keyEnd], plain)
		if err != nil {
			return 0, keyEnd, err
		}
		i = skipSpace(b, keyEnd)
		i = skipSpace(b, i+1) // the colon
		vh, vEnd, err := hs.value(b, i)
		if err != nil {
			return 0, vEnd, err
		}
		sum += mix(sum64(key)^tagMember, vh)
		n++
		i = skipSpace(b, vEnd)
		if i >= len(b) {
			return 0, i, fmt.Errorf("plan: JSON object cut short")
		}
		if b[i] == '}' {
			return mix(tagObject^n, sum), i + 1, nil
		}
		i = skipSpace(b, i+1)
	}
}

// unquote returns a JSON string's content, resolving escapes only when there
// are any (rare in API data, so the common path allocates nothing).
func unquote(quoted []byte, plain bool) ([]byte, error) {
	if len(quoted) < 2 || quoted[len(quoted)-1] != '"' {
		return nil, fmt.Errorf("plan: JSON string cut short")
	}
	inner := quoted[1 : len(quoted)-1]
	// Invalid UTF-8 takes the slow path too: decoding turns it into U+FFFD,
	// as every JSON decoder downstream will.
	if plain || (bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner)) {
		return inner, nil
	}
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return nil, fmt.Errorf("plan: bad JSON string: %w", err)
	}
	return []byte(s), nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index just past the string at b[i], and whether
// it is plain ASCII without escapes (its bytes are then its content).
func scanString(b []byte, i int) (end int, plain bool) {
	plain = true
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\\':
			plain = false
			i++
		case c == '"':
			return i + 1, plain
		case c >= 0x80:
			plain = false
		}
	}
	return len(b), false
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

// ChangedFields lists the top-level fields that differ between two JSON
// objects, sorted; a field present in only one of them counts. Key order
// and formatting inside a field never make it differ.
func ChangedFields(before, after []byte) ([]string, error) {
	hs := newHasher()
	b, err := hs.members(before)
	if err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	a, err := hs.members(after)
	if err != nil {
		return nil, fmt.Errorf("after: %w", err)
	}
	var changed []string
	i, j := 0, 0
	for i < len(b) || j < len(a) {
		switch {
		case j == len(a) || (i < len(b) && bytes.Compare(b[i].key, a[j].key) < 0):
			changed = append(changed, string(b[i].key))
			i++
		case i == len(b) || bytes.Compare(b[i].key, a[j].key) > 0:
			changed = append(changed, string(a[j].key))
			j++
		default:
			if b[i].hash != a[j].hash {
				changed = append(changed, string(b[i].key))
			}
			i++
			j++
		}
	}
	return changed, nil
}

// member is a top-level field of an object: its name, unescaped, and the
// hash of its value's canonical JSON.
type member struct {
	key  []byte
	hash uint64
}

// members reads the top-level fields of the object raw, sorted by name. A
// name written twice counts once, with its last value, as every JSON
// decoder into a map reads it.
func (hs *hasher) members(raw []byte) ([]member, error) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, fmt.Errorf("plan: not a JSON object")
	}
	ms := make([]member, 0, 16)
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		i++
	} else {
		for {
			if i >= len(raw) || raw[i] != '"' {
				return nil, fmt.Errorf("plan: JSON object key expected")
			}
			keyEnd, plain := scanString(raw, i)
			key, err := unquote(raw[i:keyEnd], plain)
			if err != nil {
				return nil, err
			}
			i = skipSpace(raw, keyEnd)
			if i >= len(raw) || raw[i] != ':' {
				return nil, fmt.Errorf("plan: JSON object colon expected")
			}
			h, end, err := hs.value(raw, skipSpace(raw, i+1))
			if err != nil {
				return nil, err
			}
			ms = append(ms, member{key: key, hash: h})
			i = skipSpace(raw, end)
			if i >= len(raw) {
				return nil, fmt.Errorf("plan: JSON object cut short")
			}
			if raw[i] == '}' {
				i++
				break
			}
			if raw[i] != ',' {
				return nil, fmt.Errorf("plan: JSON object comma expected")
			}
			i = skipSpace(raw, i+1)
		}
	}
	if skipSpace(raw, i) != len(raw) {
		return nil, fmt.Errorf("plan: trailing data after JSON value")
	}
	slices.SortStableFunc(ms, func(x, y member) int { return bytes.Compare(x.key, y.key) })
	out := ms[:0]
	for _, m := range ms {
		if n := len(out); n > 0 && bytes.Equal(out[n-1].key, m.key) {
			out[n-1] = m
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

// Field returns the value of item's top-level field name as it is written,
// and whether item is an object that has it. It reads no further than the
// field, and allocates nothing for names without escapes: it runs on every
// item a cycle sees (the changed-at value, the soft-delete mark).
func Field(item []byte, name string) (json.RawMessage, bool) {
	i := skipSpace(item, 0)
	if i >= len(item) || item[i] != '{' {
		return nil, false
	}
	i = skipSpace(item, i+1)
	for i < len(item) && item[i] == '"' {
		keyEnd, plain := scanString(item, i)
		key, err := unquote(item[i:keyEnd], plain)
		if err != nil {
			return nil, false
		}
		i = skipSpace(item, keyEnd)
		if i >= len(item) || item[i] != ':' {
			return nil, false
		}
		i = skipSpace(item, i+1)
		end, ok := skipValue(item, i)
		if !ok {
			return nil, false
		}
		if string(key) == name {
			return item[i:end], true
		}
		i = skipSpace(item, end)
		if i >= len(item) || item[i] != ',' {
			return nil, false
		}
		i = skipSpace(item, i+1)
	}
	return nil, false
}

// skipValue returns the index just past the JSON value at b[i]. It checks
// only the nesting, which is all Field needs to find the next key.
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch b[i] {
	case '"':
		end, _ := scanString(b, i)
		return end, end <= len(b) && b[end-1] == '"' && end-i >= 2
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, _ := scanString(b, i)
				if end-i < 2 || b[end-1] != '"' {
					return end, false
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
		}
		return i, false
	}
	end := skipScalar(b, i)
	return end, end > i
}
