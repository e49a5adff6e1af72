package rockety_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/rockety-io/rockety-bridge/rockety"
)

// FuzzDecodePage checks the page decoder against encoding/json: it never
// panics, accepts only valid JSON, and every item it returns is an object
// whose id encoding/json reads the same way.
func FuzzDecodePage(f *testing.F) {
	for _, s := range []string{
		`{"data":[{"id":1},{"id":"b"}],"meta":{"page":1,"per_page":2,"total":5,"pages":3}}`,
		`{"items":[{"id":7}],"pagination":{"current_page":2,"total_items":9,"total_pages":9}}`,
		`{"tasks":[{"id":"a\"b","x":[1,{"id":2}]}]}`,
		`[{"id":1}]`,
		`{"data":[]}`,
		`{"data":[{"id":1},2]}`,
		`{"data":[{"id":1}`,
		`<html></html>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		page, err := rockety.DecodePage(body, "tasks")
		if err != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		for _, it := range page.Items {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(it.Raw, &obj); err != nil {
				t.Fatalf("item %q is not an object: %v", it.Raw, err)
			}
			var id rockety.ID
			if err := json.Unmarshal(obj["id"], &id); err != nil {
				t.Fatalf("item %q: id unreadable by encoding/json: %v", it.Raw, err)
			}
			// encoding/json keeps the last of duplicate keys; the decoder
			// the first. Only compare when the key is unique.
			if id != it.ID && countKey(it.Raw) == 1 {
				t.Fatalf("item %q: id %q, encoding/json says %q", it.Raw, it.ID, id)
			}
		}
		if page.Meta.Found && page.Meta.Total < 0 && page.Meta.Pages < 0 {
			t.Fatalf("meta found without extent: %+v", page.Meta)
		}
	})
}

func countKey(raw []byte) int {
	dec := json.NewDecoder(bytes.NewReader(raw))
	n, depth := 0, 0
	expectKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return n
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				depth++
				expectKey = depth == 1
			case '}', ']':
				depth--
				expectKey = depth == 1
			case '[':
				depth++
				expectKey = false
			}
		case string:
			if depth == 1 && expectKey {
				if v == "id" {
					n++
				}
				expectKey = false
				continue
			}
			expectKey = depth == 1
		default:
			expectKey = depth == 1
		}
	}
}
