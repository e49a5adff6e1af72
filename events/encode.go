package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// encodeEvent writes e's JSON exactly as EncodeJSON does, without going
// through reflection: a poll that publishes a mass update encodes every
// event, and the items inside it are copied, not re-scanned, when they
// hold no whitespace to drop. Anything unusual (a string to escape, an
// item with whitespace) takes encoding/json's own path for that part, so
// the bytes stay the same.
func encodeEvent(e Event) ([]byte, error) {
	b := make([]byte, 0, 96+len(e.ID)+len(e.Before)+len(e.After)+16*len(e.Changed))
	b = append(b, `{"resource":`...)
	b = appendString(b, e.Resource)
	b = append(b, `,"op":`...)
	b = appendString(b, string(e.Op))
	b = append(b, `,"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"revision":`...)
	b = strconv.AppendUint(b, e.Revision, 10)
	var err error
	b = append(b, `,"before":`...)
	if b, err = appendRaw(b, e.Before); err != nil {
		return nil, err
	}
	b = append(b, `,"after":`...)
	if b, err = appendRaw(b, e.After); err != nil {
		return nil, err
	}
	if len(e.Changed) > 0 {
		b = append(b, `,"changed":[`...)
		for i, f := range e.Changed {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, f)
		}
		b = append(b, ']')
	}
	b = append(b, `,"detected_at":`...)
	t, err := e.DetectedAt.MarshalJSON()
	if err != nil {
		return nil, err
	}
	b = append(b, t...)
	if e.ResyncID != "" {
		b = append(b, `,"resync_id":`...)
		b = appendString(b, e.ResyncID)
	}
	return append(b, '}'), nil
}

// appendString quotes s as encoding/json does with HTML escaping off.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			q, _ := EncodeJSON(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendRaw writes an item's JSON as encoding/json writes a RawMessage:
// null when absent, compacted otherwise.
func appendRaw(b []byte, raw json.RawMessage) ([]byte, error) {
	if raw == nil {
		return append(b, "null"...), nil
	}
	if compact(raw) {
		return append(b, raw...), nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("events: an item is not JSON: %w", err)
	}
	return append(b, buf.Bytes()...), nil
}

// compact reports whether raw has no whitespace outside its strings and no
// character encoding/json would write otherwise: the bytes json.Compact
// would return are raw itself.
func compact(raw []byte) bool {
	if len(raw) == 0 {
		return false
	}
	in := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return false
		case c == 0xE2 && i+2 < len(raw) && raw[i+1] == 0x80 && (raw[i+2] == 0xA8 || raw[i+2] == 0xA9):
			return false // U+2028, U+2029: encoding/json escapes them even here
		}
	}
	return !in
}
