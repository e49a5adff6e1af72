package rockety_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/rockety-io/rockety-bridge/rockety"
)

func TestDecodePage(t *testing.T) {
	unknown := rockety.Meta{Page: -1, PerPage: -1, Total: -1, Pages: -1}
	tests := []struct {
		name    string
		body    string
		ids     []rockety.ID
		meta    rockety.Meta
		wantErr string
	}{
		// Bad input first.
		{name: "empty body", body: ``, wantErr: "malformed response"},
		{name: "truncated", body: `{"data":[{"id":1},{"id":2`, wantErr: "unexpected end of JSON input"},
		{name: "html page", body: `<html><body>502 Bad Gateway</body></html>`, wantErr: "invalid character '<'"},
		{name: "string body", body: `"hello"`, wantErr: "is a string, not an object or array"},
		{name: "no items key", body: `{"meta":{"total":0}}`, wantErr: `no item array under "data", "items", "results" or "tasks"`},
		{name: "data is an object", body: `{"data":{"id":1}}`, wantErr: "no item array"},
		{name: "item not an object", body: `{"data":[{"id":1},2]}`, wantErr: "item 1 is a number, not an object"},
		{name: "item without id", body: `{"data":[{"name":"x"}]}`, wantErr: `item 0: no "id" field`},
		{name: "null id", body: `{"data":[{"id":null}]}`, wantErr: `"id" is null`},
		{name: "bool id", body: `{"data":[{"id":true}]}`, wantErr: `"id" is a boolean`},
		{name: "empty string id", body: `{"data":[{"id":""}]}`, wantErr: `empty "id"`},
		{name: "negative meta", body: `{"data":[],"meta":{"total":-1}}`, wantErr: `metadata field "total"`},
		{name: "fractional meta", body: `{"data":[],"meta":{"pages":1.5}}`, wantErr: `metadata field "pages"`},

		{name: "data and meta", body: `{"data":[{"id":1},{"id":"b"}],"meta":{"page":1,"per_page":2,"total":5,"pages":3}}`,
			ids: []rockety.ID{"1", "b"}, meta: rockety.Meta{Found: true, Page: 1, PerPage: 2, Total: 5, Pages: 3}},
		{name: "items and pagination", body: `{"items":[{"id":7}],"pagination":{"current_page":2,"per_page":1,"total_items":9,"total_pages":9}}`,
			ids: []rockety.ID{"7"}, meta: rockety.Meta{Found: true, Page: 2, PerPage: 1, Total: 9, Pages: 9}},
		{name: "results with total_count and page_count", body: `{"results":[{"id":7}],"meta":{"total_count":"9","page_count":9.0}}`,
			ids: []rockety.ID{"7"}, meta: rockety.Meta{Found: true, Page: -1, PerPage: -1, Total: 9, Pages: 9}},
		{name: "under the resource name", body: `{"tasks":[{"id":3}],"meta":{"total":1}}`,
			ids: []rockety.ID{"3"}, meta: rockety.Meta{Found: true, Page: -1, PerPage: -1, Total: 1, Pages: -1}},
		{name: "data wins over other keys", body: `{"results":[{"id":1}],"data":[{"id":2}]}`,
			ids: []rockety.ID{"2"}, meta: unknown},
		{name: "bare array", body: ` [ {"id":1} , {"id":2} ] `, ids: []rockety.ID{"1", "2"}, meta: unknown},
		{name: "no metadata", body: `{"data":[{"id":1}]}`, ids: []rockety.ID{"1"}, meta: unknown},
		{name: "metadata without extent", body: `{"data":[{"id":1}],"meta":{"page":1}}`, ids: []rockety.ID{"1"},
			meta: rockety.Meta{Page: 1, PerPage: -1, Total: -1, Pages: -1}},
		{name: "empty page", body: `{"data":[],"meta":{"total":0,"pages":0}}`, ids: []rockety.ID{},
			meta: rockety.Meta{Found: true, Page: -1, PerPage: -1, Total: 0, Pages: 0}},
		{name: "escaped id and key", body: `{"d\u0061ta":[{"name":"x","\u0069d":"a\"b\u00e9"}]}`,
			ids: []rockety.ID{`a"bé`}, meta: unknown},
		{name: "id is not confused with nested ids", body: `{"data":[{"owner":{"id":9},"tags":["id"],"id":4}]}`,
			ids: []rockety.ID{"4"}, meta: unknown},
		{name: "big and negative numbers keep their text", body: `{"data":[{"id":12345678901234567890},{"id":-3}]}`,
			ids: []rockety.ID{"12345678901234567890", "-3"}, meta: unknown},
		{name: "whitespace everywhere", body: "\n{ \"data\" : [ { \"id\" : 1 } ,\t{\"id\":2}\r\n] , \"meta\" : { \"pages\" : 1 } }\n",
			ids: []rockety.ID{"1", "2"}, meta: rockety.Meta{Found: true, Page: -1, PerPage: -1, Total: -1, Pages: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rockety.DecodePage([]byte(tt.body), "tasks")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if !errors.Is(err, rockety.ErrDecode) {
					t.Errorf("err = %v does not match ErrDecode", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []rockety.ID
			for _, it := range got.Items {
				ids = append(ids, it.ID)
				if !json.Valid(it.Raw) {
					t.Errorf("item %s raw %q is not valid JSON", it.ID, it.Raw)
				}
			}
			if len(ids) != len(tt.ids) || (len(ids) > 0 && strings.Join(idStrings(ids), ",") != strings.Join(idStrings(tt.ids), ",")) {
				t.Errorf("ids = %q, want %q", ids, tt.ids)
			}
			if got.Meta != tt.meta {
				t.Errorf("meta = %+v, want %+v", got.Meta, tt.meta)
			}
		})
	}
}

func TestDecodePageKeepsItemBytes(t *testing.T) {
	item := `{ "title" : "a",  "id":1, "x":{"unknown":[1,2,{"deep":null}]} }`
	got, err := rockety.DecodePage([]byte(`{"data":[`+item+`]}`), "tasks")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Items[0].Raw) != item {
		t.Errorf("raw = %s, want the bytes as sent: %s", got.Items[0].Raw, item)
	}
}

func idStrings(ids []rockety.ID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(id)
	}
	return out
}

func TestDecodeItemTyped(t *testing.T) {
	raw := `{"id":42,"project_id":"p-1","title":"Write docs","status":"open","tags":["a"],"created_at":"2026-11-26T10:00:00Z","custom":{"x":1}}`
	got, err := rockety.DecodePage([]byte(`{"data":[`+raw+`]}`), "tasks")
	if err != nil {
		t.Fatal(err)
	}
	task, err := rockety.DecodeItem[rockety.Task](got.Items[0])
	if err != nil {
		t.Fatal(err)
	}
	if task.ID != "42" || task.ProjectID != "p-1" || task.Title != "Write docs" || task.CreatedAt.IsZero() {
		t.Errorf("task = %+v", task)
	}
	if !strings.Contains(string(got.Items[0].Raw), `"custom":{"x":1}`) {
		t.Errorf("unknown field lost from raw: %s", got.Items[0].Raw)
	}
	if _, err := rockety.DecodeItem[rockety.User](rockety.Item{ID: "1", Raw: json.RawMessage(`{"id":1,"active":"yes"}`)}); err == nil ||
		!strings.Contains(err.Error(), `decoding item "1"`) {
		t.Errorf("err = %v, want a decode error naming the item", err)
	}
}
