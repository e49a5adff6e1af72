package rockety

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestValidJSON: every case agrees with json.Valid, the edges first.
func TestValidJSON(t *testing.T) {
	cases := []string{
		"", " ", "{", "}", "[", "]", "{]", "[}", "{}", "[]", " {} ", "{}{}", "{},", "[,]", "[1,]", "[,1]", "{,}",
		`{"a"}`, `{"a":}`, `{"a" 1}`, `{"a":1,}`, `{1:1}`, `{"a":1 "b":2}`, `{"a":1}x`, `{"a":[1,{"b":null}]}`,
		`""`, `"`, `"\"`, `"\\"`, `"\u12"`, `"\u12G4"`, `"\u00e9"`, `"\x"`, "\"a\tb\"", "\"\x1f\"", "\"\xff\xfe\"", `"\/"`,
		"0", "-", "-0", "01", "1.", "1.5", ".5", "1e", "1e+", "1e+5", "1E-0", "-1.25e10", "+1", "1x", "0.0e", "00",
		"true", "tru", "truex", "false", "null", "nul", "nulll", "True", "[true,false,null]",
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		strings.Repeat("[", 9999) + "{}" + strings.Repeat("]", 9999),
		strings.Repeat("[", 10000) + "{}" + strings.Repeat("]", 10000),
		strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
		strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
	}
	for _, c := range cases {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%.40q) = %v, json.Valid says %v", c, got, want)
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"data":[{"id":1,"t":"a\u00e9"}],"meta":{"page":1}}`, `[1,-2.5e3,true,null,"x"]`, `{"a":{}}`, "\"\\ud800\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}

func BenchmarkValidJSON(b *testing.B) {
	page := []byte(`{"data":[` + strings.TrimSuffix(strings.Repeat(`{"id":4242,"project_id":17,"title":"Write the quarterly report","status":"open","labels":["finance","q4"],"estimate_hours":6.5,"description":"Collect the numbers from every team and write them up.","updated_at":"2026-11-30T17:03:09Z"},`, 100), ",") + `],"meta":{"page":1,"per_page":100,"total":100000,"pages":1000}}`)
	b.Run("ours", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			if !validJSON(page) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			if !json.Valid(page) {
				b.Fatal("invalid")
			}
		}
	})
}
