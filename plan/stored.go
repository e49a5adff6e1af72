package plan

import (
	"strconv"
	"strings"
)

// HashHeader is the mirror entry header that carries the hashes of its
// value, so that a start can load a million entries without reading or
// hashing their values. Its value is HashVersion, a fingerprint of the
// hash key (8 hex digits), the canonical hash and the raw hash (16 hex
// digits each), separated by colons:
// "x1:89abcdef:0123456789abcdef:fedcba9876543210".
const HashHeader = "Rockety-Hash"

// HashVersion names how Hash and RawHash compute. An entry whose header
// names another version (an older or newer bridge wrote it), or another
// key, is hashed from its value instead.
const HashVersion = "x1"

// FormatHashes is the HashHeader value of a value with these hashes, made
// with the current key.
func FormatHashes(canonical, raw uint64) string {
	b := make([]byte, 0, len(HashVersion)+3+8+32)
	b = append(b, HashVersion...)
	b = append(b, ':')
	b = appendHex(b, uint64(keyFingerprint(HashKey())), 8)
	b = append(b, ':')
	b = appendHex(b, canonical, 16)
	b = append(b, ':')
	b = appendHex(b, raw, 16)
	return string(b)
}

// appendHex writes the low digits hex digits of v, zeros in front.
func appendHex(b []byte, v uint64, digits int) []byte {
	for shift := 4 * (digits - 1); shift >= 0; shift -= 4 {
		b = append(b, "0123456789abcdef"[v>>uint(shift)&0xf])
	}
	return b
}

// ParseHashes reads a HashHeader value. ok is false for an empty, damaged
// or other-version value, and for one made with another key: the caller
// then hashes the value itself.
func ParseHashes(header string) (canonical, raw uint64, ok bool) {
	version, rest, found := strings.Cut(header, ":")
	if !found || version != HashVersion {
		return 0, 0, false
	}
	fp, rest, found := strings.Cut(rest, ":")
	if !found || len(fp) != 8 {
		return 0, 0, false
	}
	if v, err := strconv.ParseUint(fp, 16, 32); err != nil || uint32(v) != keyFingerprint(HashKey()) {
		return 0, 0, false
	}
	c, r, found := strings.Cut(rest, ":")
	if !found || len(c) != 16 || len(r) != 16 {
		return 0, 0, false
	}
	canonical, err1 := strconv.ParseUint(c, 16, 64)
	raw, err2 := strconv.ParseUint(r, 16, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return canonical, raw, true
}

// TakeHashes sets the state's hashes from its mirror entry's HashHeader
// when that is of this version and key, and reports whether it did.
func (s *State) TakeHashes(header string) bool {
	c, r, ok := ParseHashes(header)
	if ok {
		s.Hash, s.RawHash, s.Hashed = c, r, true
	}
	return ok
}

// ValueHashes computes the canonical and the raw hash of value, a
// canonical hash of 0 if it is not JSON.
func ValueHashes(value []byte) (canonical, raw uint64) {
	h, err := Hash(value)
	if err != nil {
		h = 0
	}
	return h, RawHash(value)
}
