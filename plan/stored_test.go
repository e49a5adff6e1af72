package plan

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// testKey makes the hashes of these tests the same on every run.
var testKey = [2]uint64{0x0123456789abcdef, 0x0fedcba987654321}

func withKey(t *testing.T, key [2]uint64) {
	t.Helper()
	old := HashKey()
	UseHashKey(key)
	t.Cleanup(func() { UseHashKey(old) })
}

func TestParseHashes(t *testing.T) {
	withKey(t, testKey)
	fp := fmt.Sprintf("%08x", keyFingerprint(testKey))
	other := fmt.Sprintf("%08x", keyFingerprint([2]uint64{1, 2}))
	for _, tc := range []struct {
		name           string
		header         string
		canonical, raw uint64
		ok             bool
	}{
		{"empty", "", 0, 0, false},
		{"no version", fp + ":0123456789abcdef:fedcba9876543210", 0, 0, false},
		{"other version", "x2:" + fp + ":0123456789abcdef:fedcba9876543210", 0, 0, false},
		{"without a key", "x1:0123456789abcdef:fedcba9876543210", 0, 0, false},
		{"another key", "x1:" + other + ":0123456789abcdef:fedcba9876543210", 0, 0, false},
		{"damaged key", "x1:" + fp[:7] + "g:0123456789abcdef:fedcba9876543210", 0, 0, false},
		{"one hash", "x1:" + fp + ":0123456789abcdef", 0, 0, false},
		{"short hash", "x1:" + fp + ":0123456789abcde:fedcba9876543210", 0, 0, false},
		{"long hash", "x1:" + fp + ":0123456789abcdef0:fedcba9876543210", 0, 0, false},
		{"not hex", "x1:" + fp + ":0123456789abcdeg:fedcba9876543210", 0, 0, false},
		{"signed", "x1:" + fp + ":+123456789abcdef:fedcba9876543210", 0, 0, false},
		{"trailing field", "x1:" + fp + ":0123456789abcdef:fedcba9876543210:00", 0, 0, false},
		{"zeros", "x1:" + fp + ":0000000000000000:0000000000000000", 0, 0, true},
		{"valid", "x1:" + fp + ":0123456789abcdef:fedcba9876543210", 0x0123456789abcdef, 0xfedcba9876543210, true},
		{"upper case hex", "x1:" + strings.ToUpper(fp) + ":0123456789ABCDEF:FEDCBA9876543210", 0x0123456789abcdef, 0xfedcba9876543210, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, r, ok := ParseHashes(tc.header)
			if c != tc.canonical || r != tc.raw || ok != tc.ok {
				t.Fatalf("ParseHashes(%q) = %x, %x, %v; want %x, %x, %v", tc.header, c, r, ok, tc.canonical, tc.raw, tc.ok)
			}
		})
	}
}

func TestFormatHashesRoundTrips(t *testing.T) {
	for _, v := range [][2]uint64{{0, 0}, {1, 2}, {^uint64(0), 0x8000000000000000}, {0x0123456789abcdef, 0xfedcba9876543210}} {
		s := FormatHashes(v[0], v[1])
		c, r, ok := ParseHashes(s)
		if !ok || c != v[0] || r != v[1] {
			t.Fatalf("FormatHashes(%x, %x) = %q, which parses as %x, %x, %v", v[0], v[1], s, c, r, ok)
		}
	}
}

// The stored hashes outlive the process: with the same key, a hash must
// not depend on anything but the value, or a restarted bridge would take
// every loaded item for changed. With another key, it differs.
func TestHashIsStableAcrossProcesses(t *testing.T) {
	withKey(t, testKey)
	const item = `{"id":42,"title":"a","tags":["x",1,null,true],"n":{"b":2.5,"a":"\u00e9"}}`
	h, err := Hash([]byte(item))
	if err != nil {
		t.Fatal(err)
	}
	// Recorded from this version; a new value means a new HashVersion.
	const want = "x1:f5948123:5f5dfb710420c690:c170c2d900dfacc2"
	if got := FormatHashes(h, RawHash([]byte(item))); got != want {
		t.Fatalf("hashes of %s are %s, want %s; a change in how items hash needs a new HashVersion", item, got, want)
	}
	UseHashKey([2]uint64{testKey[0], testKey[1] + 1})
	if h2, _ := Hash([]byte(item)); h2 == h || RawHash([]byte(item)) == RawHash([]byte(item+" ")) {
		t.Errorf("another key gives the same canonical hash %x", h)
	}
}

func TestStateHashes(t *testing.T) {
	value := []byte(`{"b":1,"a":2}`)
	c, r := ValueHashes(value)
	stored := func(header string, value []byte) (uint64, uint64) {
		s := State{ID: "1", Value: value, Revision: 3}
		s.TakeHashes(header)
		return s.Hashes()
	}
	if gc, gr := stored("", value); gc != c || gr != r {
		t.Fatalf("without a header: %x %x, want the value's %x %x", gc, gr, c, r)
	}
	if gc, gr := stored(FormatHashes(7, 8), value); gc != 7 || gr != 8 {
		t.Fatalf("with a header: %x %x, want the header's 7 8", gc, gr)
	}
	if gc, gr := stored("x0:00000000:0000000000000007:0000000000000008", value); gc != c || gr != r {
		t.Fatalf("with another version's header: %x %x, want the value's", gc, gr)
	}
	if gc, _ := stored("", []byte("not json")); gc != 0 {
		t.Fatalf("a value that is not JSON hashes to %x, want 0", gc)
	}
}

// sum64 is ours, so its spread is checked: inputs that differ in a byte,
// a bit or their length must not collide (with 64 bits, a single collision
// among these million inputs would be a defect, not chance).
func TestSum64SpreadsCloseInputs(t *testing.T) {
	seen := map[uint64]string{}
	add := func(b []byte) {
		h := sum64(b)
		if prev, dup := seen[h]; dup && prev != string(b) {
			t.Fatalf("sum64(%q) = sum64(%q) = %x", b, prev, h)
		}
		seen[h] = string(b)
	}
	add(nil)
	for a := range 256 {
		add([]byte{byte(a)})
		for b := range 256 {
			add([]byte{byte(a), byte(b)})
		}
	}
	for i := range 1_000_000 {
		add(strconv.AppendInt(nil, int64(i), 10))
	}
	long := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog ", 3))
	for n := range long {
		add(long[:n])
	}
	for _, n := range []int{5, 8, 9, 16, 17, 31, 32, 33, 64, 100} {
		for bit := range n * 8 {
			b := append([]byte(nil), long[:n]...)
			b[bit/8] ^= 1 << (bit % 8)
			add(b)
		}
	}
}
