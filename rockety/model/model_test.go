package model_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rockety-io/rockety-bridge/rockety/model"
)

func TestIDUnmarshalJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    model.ID
		wantErr string
	}{
		{name: "string", in: `"t-1"`, want: "t-1"},
		{name: "escaped string", in: `"a\u002eb"`, want: "a.b"},
		// A number keeps its literal text, so 42 and 42.0 stay two ids as
		// the API sent them rather than meeting as one float.
		{name: "integer", in: `42`, want: "42"},
		{name: "negative", in: `-7`, want: "-7"},
		{name: "decimal keeps its text", in: `42.0`, want: "42.0"},
		{name: "big integer keeps every digit", in: `12345678901234567890123`, want: "12345678901234567890123"},
		{name: "null is no id", in: `null`, want: ""},
		{name: "boolean", in: `true`, wantErr: "must be a string or a number"},
		{name: "object", in: `{"id":1}`, wantErr: "must be a string or a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v struct {
				ID model.ID `json:"id"`
			}
			err := json.Unmarshal([]byte(`{"id":`+tt.in+`}`), &v)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.ID != tt.want {
				t.Errorf("id = %q, want %q", v.ID, tt.want)
			}
		})
	}
}

func TestDecodeItem(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    model.Task
		wantErr string
	}{
		{
			name: "known fields typed, unknown ones dropped from the view",
			raw:  `{"id":7,"title":"ship","tags":["a"],"project_id":"p-1","colour":"red"}`,
			want: model.Task{ID: "7", Title: "ship", Tags: []string{"a"}, ProjectID: "p-1"},
		},
		{name: "wrong field type names the item", raw: `{"id":7,"title":3}`, wantErr: `decoding item "7" as model.Task`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := model.DecodeItem[model.Task](model.Item{ID: "7", Raw: json.RawMessage(tt.raw)})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != tt.want.ID || got.Title != tt.want.Title || got.ProjectID != tt.want.ProjectID ||
				strings.Join(got.Tags, ",") != strings.Join(tt.want.Tags, ",") {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
