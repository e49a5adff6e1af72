package plan

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
)

func TestCanonicalHash(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"key order", `{"a":1,"b":2}`, `{"b":2,"a":1}`, true},
		{"whitespace", `{"a":[1,2],"b":{"c":null}}`, "{ \"a\" : [ 1 , 2 ] ,\n\t\"b\": {\"c\" :null} }", true},
		{"nested key order", `{"x":{"a":1,"b":[{"d":1,"c":2}]}}`, `{"x":{"b":[{"c":2,"d":1}],"a":1}}`, true},
		{"string escapes", `{"s":"A\u00e9\n"}`, "{\"s\":\"Aé\\n\"}", true},
		{"escaped key", `{"\u0061":1}`, `{"a":1}`, true},
		{"value change", `{"a":1}`, `{"a":2}`, false},
		{"array order matters", `[1,2]`, `[2,1]`, false},
		{"number text matters", `{"a":1}`, `{"a":1.0}`, false},
		{"string vs number", `{"a":"1"}`, `{"a":1}`, false},
		{"null vs missing", `{"a":null}`, `{}`, false},
		{"empty object vs array", `{"a":{}}`, `{"a":[]}`, false},
		{"boundaries", `{"ab":"c"}`, `{"a":"bc"}`, false},
		{"nesting boundaries", `[[1],2]`, `[[1,2]]`, false},
		{"added key", `{"a":1}`, `{"a":1,"b":1}`, false},
		{"true vs false", `{"a":true}`, `{"a":false}`, false},
	}
	hs := newHasher()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := hs.Sum([]byte(tt.a))
			if err != nil {
				t.Fatal(err)
			}
			b, err := hs.Sum([]byte(tt.b))
			if err != nil {
				t.Fatal(err)
			}
			if (a == b) != tt.same {
				t.Errorf("hash(%s) == hash(%s) is %v, want %v", tt.a, tt.b, a == b, tt.same)
			}
		})
	}
	for _, bad := range []string{``, `  `, `{"a":1`, `{"a":"x`, `"`, `[1,2`, `{"a":1} x`, `{1:2}`} {
		if _, err := hs.Sum([]byte(bad)); err == nil {
			t.Errorf("Sum(%q): no error", bad)
		}
	}
}

// FuzzCanonicalHash checks that the hash of any valid JSON equals the hash of
// the same value re-encoded by encoding/json (sorted keys, no whitespace,
// its own string escaping), and that no input makes it panic.
func FuzzCanonicalHash(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[true,null,"x\u00e9"]}`, `[]`, `{}`, `"s"`, `-1.5e3`, `{"a":{"c":1,"b":2}}`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		hs := newHasher()
		got, err := hs.Sum(raw)
		if !json.Valid(raw) {
			return // only "no panic" is promised for broken input
		}
		if err != nil {
			t.Fatalf("valid JSON %q: %v", raw, err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil || hasDuplicateKeys(raw) {
			return
		}
		again, err := json.Marshal(v)
		if err != nil {
			return
		}
		want, err := hs.Sum(again)
		if err != nil || want != got {
			t.Fatalf("hash(%s) != hash(%s) (re-encoded): %v", raw, again, err)
		}
	})
}

// FuzzChangedFields holds ChangedFields, which reads each object once, to
// the plain reading: both objects decoded by encoding/json into maps, each
// field's value compared by its canonical hash.
func FuzzChangedFields(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"x":1,"y":2},"c":"s"}`), []byte(`{"b":{"y":2,"x":1},"a":2,"d":null}`))
	f.Add([]byte(`{"a":1,"a":2}`), []byte(`{"a":2,"\u0061":3}`))
	f.Fuzz(func(t *testing.T, before, after []byte) {
		got, err := ChangedFields(before, after)
		var b, a map[string]json.RawMessage
		if json.Unmarshal(before, &b) != nil || json.Unmarshal(after, &a) != nil || b == nil || a == nil {
			return // only "no panic" is promised for anything but two objects
		}
		if err != nil {
			t.Fatalf("ChangedFields(%s, %s): %v", before, after, err)
		}
		var want []string
		for k, bv := range b {
			av, ok := a[k]
			if !ok {
				want = append(want, k)
				continue
			}
			bh, _ := Hash(bv)
			ah, _ := Hash(av)
			if ah != bh {
				want = append(want, k)
			}
		}
		for k := range a {
			if _, ok := b[k]; !ok {
				want = append(want, k)
			}
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("ChangedFields(%s, %s) = %q; decoded into maps: %q", before, after, got, want)
		}
	})
}

// hasDuplicateKeys reports objects with a repeated key, which encoding/json
// collapses and the hasher keeps.
func hasDuplicateKeys(raw []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	type frame struct {
		keys   map[string]bool
		object bool
		expect bool
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		top := len(stack) - 1
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				if top >= 0 && stack[top].object {
					stack[top].expect = true
				}
				stack = append(stack, frame{keys: map[string]bool{}, object: true, expect: true})
			case '[':
				if top >= 0 && stack[top].object {
					stack[top].expect = true
				}
				stack = append(stack, frame{})
			default:
				stack = stack[:top]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].expect = true
				}
			}
			continue
		}
		if top >= 0 && stack[top].object {
			if stack[top].expect {
				k := tok.(string)
				if stack[top].keys[k] {
					return true
				}
				stack[top].keys[k] = true
				stack[top].expect = false
			} else {
				stack[top].expect = true
			}
		}
	}
}

func TestChangedFields(t *testing.T) {
	tests := []struct {
		name, before, after string
		want                []string
		wantErr             bool
	}{
		{name: "not an object", before: `[1]`, after: `{}`, wantErr: true},
		{name: "broken after", before: `{}`, after: `{"a":`, wantErr: true},
		{name: "same", before: `{"a":1,"b":{"x":1,"y":2}}`, after: `{"b":{"y":2,"x":1},"a":1}`},
		{name: "changed, added and removed", before: `{"a":1,"b":2,"c":3}`, after: `{"a":1,"b":5,"d":4}`, want: []string{"b", "c", "d"}},
		{name: "nested change names the top field", before: `{"a":{"x":[1,2]}}`, after: `{"a":{"x":[2,1]}}`, want: []string{"a"}},
		{name: "null is a value", before: `{"a":null}`, after: `{}`, want: []string{"a"}},
		{name: "a name written twice counts with its last value", before: `{"a":1,"a":2}`, after: `{"a":2}`},
		{name: "escaped names are their text", before: `{"a\u0062":1,"\u00e9":2}`, after: `{"ab":1,"é":3}`, want: []string{"é"}},
		{name: "whitespace everywhere", before: " {\n \"a\" : 1 ,\t\"b\":[ 1 ] } ", after: `{"b":[1],"a":2}`, want: []string{"a"}},
		{name: "empty objects", before: `{}`, after: `{ }`},
		{name: "trailing data", before: `{"a":1}x`, after: `{}`, wantErr: true},
		{name: "missing colon", before: `{"a" 1}`, after: `{}`, wantErr: true},
		{name: "not JSON", before: `garbage`, after: `{}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ChangedFields([]byte(tt.before), []byte(tt.after))
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Errorf("ChangedFields = %v, %v; want %v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// BenchmarkChangedFields puts ChangedFields beside the plain reading it
// replaced (both objects decoded into maps by encoding/json, each value
// hashed), on a task of the simulator's shape with one field changed.
func BenchmarkChangedFields(b *testing.B) {
	before := []byte(`{"id":4242,"project_id":17,"title":"Write the quarterly report","status":"open","priority":"high","assignee_id":31,"labels":["finance","q4"],"due_on":"2026-12-15","estimate_hours":6.5,"description":"Collect the numbers from every team and write them up.","created_at":"2026-11-01T09:12:44Z","updated_at":"2026-11-30T17:03:09Z"}`)
	after := bytes.Replace(before, []byte(`"open"`), []byte(`"done"`), 1)
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ChangedFields(before, after); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decoded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var x, y map[string]json.RawMessage
			if json.Unmarshal(before, &x) != nil || json.Unmarshal(after, &y) != nil {
				b.Fatal("bad JSON")
			}
			var changed []string
			for k, v := range x {
				h1, _ := Hash(v)
				h2, _ := Hash(y[k])
				if h1 != h2 {
					changed = append(changed, k)
				}
			}
			slices.Sort(changed)
		}
	})
}
