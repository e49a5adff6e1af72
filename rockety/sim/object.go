package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// object is a JSON object decoded only one level deep. Writes go through it
// rather than map[string]any so that merging keeps the client's key order and
// number literals (a map would sort the keys and turn 12345678901234567890
// into a float).
type object []field

type field struct {
	key string
	val json.RawMessage
}

var jsonNull = json.RawMessage("null")

// parseObject decodes b, which must be exactly one JSON object. A repeated key
// keeps its last value, as encoding/json does.
func parseObject(b []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, invalidf("invalid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, invalidf("body must be a JSON object")
	}
	var obj object
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalidf("invalid JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, invalidf("invalid JSON: object key expected")
		}
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, invalidf("invalid JSON: %w", err)
		}
		obj.set(key, val)
	}
	if _, err := dec.Token(); err != nil {
		return nil, invalidf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalidf("invalid JSON: data after the object")
	}
	return obj, nil
}

func (o object) get(key string) (json.RawMessage, bool) {
	for _, f := range o {
		if f.key == key {
			return f.val, true
		}
	}
	return nil, false
}

// set replaces key's value in place, or appends the key at the end.
func (o *object) set(key string, val json.RawMessage) {
	for i := range *o {
		if (*o)[i].key == key {
			(*o)[i].val = val
			return
		}
	}
	*o = append(*o, field{key: key, val: val})
}

// marshal writes the object compactly; values were checked by the decoder, so
// compacting them cannot fail.
func (o object) marshal() []byte {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(appendString(nil, f.key))
		buf.WriteByte(':')
		if err := json.Compact(&buf, f.val); err != nil {
			buf.Write(jsonNull)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

// canonical re-encodes a JSON value with sorted keys and no whitespace, the
// form in which two items are "the same" for the bridge (DESIGN.md, rule 2).
func canonical(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decoding item: %w", err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding item: %w", err)
	}
	return out, nil
}

// appendString appends s as a JSON string, escaping only what JSON requires
// (encoding/json would also escape <, > and &, and allocate).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			// Invalid UTF-8 (a request path can hold any bytes) would make
			// the output invalid JSON, so it becomes U+FFFD.
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, `\ufffd`...)
				start = i + 1
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// objWriter appends one flat JSON object field by field; the generators use it
// instead of encoding/json so that seeding a million items stays quick and
// fixes the key order.
type objWriter struct {
	b []byte
	n int
}

func (w *objWriter) begin() { w.b = append(w.b, '{'); w.n = 0 }
func (w *objWriter) end()   { w.b = append(w.b, '}') }

func (w *objWriter) key(k string) {
	if w.n > 0 {
		w.b = append(w.b, ',')
	}
	w.n++
	w.b = appendString(w.b, k)
	w.b = append(w.b, ':')
}

func (w *objWriter) str(k, v string) { w.key(k); w.b = appendString(w.b, v) }

func (w *objWriter) int(k string, v int64) { w.key(k); w.b = strconv.AppendInt(w.b, v, 10) }

func (w *objWriter) bool(k string, v bool) { w.key(k); w.b = strconv.AppendBool(w.b, v) }

func (w *objWriter) null(k string) { w.key(k); w.b = append(w.b, jsonNull...) }

// ref writes an id reference; 0 stands for "no reference" and becomes null.
func (w *objWriter) ref(k string, id int64) {
	if id == 0 {
		w.null(k)
		return
	}
	w.int(k, id)
}

func (w *objWriter) strs(k string, v []string) {
	w.key(k)
	w.b = appendStrings(w.b, v)
}

func (w *objWriter) raw(k string, v []byte) { w.key(k); w.b = append(w.b, v...) }

func appendStrings(b []byte, v []string) []byte {
	b = append(b, '[')
	for i, s := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}
