package events

import (
	"strings"
	"testing"
)

func TestParseResyncRequest(t *testing.T) {
	for _, tc := range []struct {
		body    string
		mode    ResyncMode
		wantErr string
	}{
		{body: "", mode: ResyncFull},
		{body: "  \n", mode: ResyncFull},
		{body: `{}`, mode: ResyncFull},
		{body: `{"mode":"full"}`, mode: ResyncFull},
		{body: `{"mode":"snapshot"}`, mode: ResyncSnapshot},
		{body: `{"mode":"Snapshot"}`, wantErr: `resync mode "Snapshot": want "full" or "snapshot"`},
		{body: `{"mode":1}`, wantErr: `send {"mode":"full"} or {"mode":"snapshot"}`},
		{body: `{"mode":"full","force":true}`, wantErr: `unknown field "force"`},
		{body: `snapshot`, wantErr: `resync request "snapshot"`},
		{body: strings.Repeat("x", 300), wantErr: "…"},
	} {
		mode, err := ParseResyncRequest([]byte(tc.body))
		switch {
		case tc.wantErr == "" && (err != nil || mode != tc.mode):
			t.Errorf("ParseResyncRequest(%q) = %q, %v; want %q", tc.body, mode, err, tc.mode)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ParseResyncRequest(%q) = %q, %v; want an error with %q", tc.body, mode, err, tc.wantErr)
		}
	}
}
