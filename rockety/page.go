package rockety

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Meta is the pagination metadata of one list response, whatever its shape.
// A field the API did not send is -1.
type Meta struct {
	// Found is false when the response had no metadata at all; the traversal
	// then stops at an empty page or one shorter than per_page.
	Found   bool
	Page    int
	PerPage int
	Total   int
	Pages   int
}

// lastPage is the number of the last page the metadata implies, or -1.
// When the page count and the item total disagree, the larger wins: a page
// too many costs one request, a page too few would hide items.
func (m Meta) lastPage(requestedPerPage int) int {
	perPage := requestedPerPage
	if m.PerPage > 0 {
		perPage = m.PerPage
	}
	fromTotal := -1
	if m.Total >= 0 && perPage > 0 {
		fromTotal = (m.Total + perPage - 1) / perPage
	}
	return max(m.Pages, fromTotal)
}

// PageBody is a decoded list response: its items and its metadata.
type PageBody struct {
	Items []Item
	Meta  Meta
}

// Keys the API may put items and metadata under (DESIGN.md lists them). The
// resource's own name is tried after these.
var (
	itemKeys    = []string{"data", "items", "results"}
	metaKeys    = []string{"meta", "pagination"}
	totalKeys   = []string{"total", "total_items", "total_count"}
	pagesKeys   = []string{"pages", "total_pages", "page_count"}
	pageKeys    = []string{"page", "current_page"}
	perPageKeys = []string{"per_page", "page_size", "limit"}
)

// DecodePage decodes one list response for resource. The items keep their
// bytes exactly as sent (they alias body, which must not be modified
// afterwards). Every item must be a JSON object with a non-null "id".
//
// Items may be under "data", "items", "results" or the resource's name, or
// be the whole body as a bare array; metadata under "meta" or "pagination".
func DecodePage(body []byte, resource string) (PageBody, error) {
	out := PageBody{Meta: Meta{Page: -1, PerPage: -1, Total: -1, Pages: -1}}
	// One validating pass up front lets the splitting below stay a cheap
	// scan that never has to handle broken input.
	if !validJSON(body) {
		var v any
		err := json.Unmarshal(body, &v)
		return out, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	i := skipSpace(body, 0)
	if body[i] == '[' {
		items, err := splitItems(body, i)
		out.Items = items
		return out, err
	}
	if body[i] != '{' {
		return out, fmt.Errorf("%w: the list response is %s, not an object or array", ErrDecode, kindOf(body[i]))
	}
	var itemsAt, itemsRank = -1, len(itemKeys) + 1
	var metaRaw []byte
	metaRank := len(metaKeys)
	err := eachMember(body, i, func(key []byte, valueStart, valueEnd int) error {
		k := string(key)
		for rank, name := range itemKeys {
			if k == name && rank < itemsRank && body[valueStart] == '[' {
				itemsAt, itemsRank = valueStart, rank
			}
		}
		if k == resource && itemsRank > len(itemKeys) && body[valueStart] == '[' {
			itemsAt, itemsRank = valueStart, len(itemKeys)
		}
		for rank, name := range metaKeys {
			if k == name && rank < metaRank && body[valueStart] == '{' {
				metaRaw, metaRank = body[valueStart:valueEnd], rank
			}
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	if itemsAt < 0 {
		return out, fmt.Errorf("%w: no item array under \"data\", \"items\", \"results\" or %q", ErrDecode, resource)
	}
	if out.Items, err = splitItems(body, itemsAt); err != nil {
		return out, err
	}
	if metaRaw != nil {
		out.Meta, err = decodeMeta(metaRaw)
	}
	return out, err
}

func decodeMeta(raw []byte) (Meta, error) {
	m := Meta{Found: true, Page: -1, PerPage: -1, Total: -1, Pages: -1}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return m, fmt.Errorf("%w: metadata: %w", ErrDecode, err)
	}
	for _, f := range []struct {
		dst  *int
		keys []string
	}{{&m.Total, totalKeys}, {&m.Pages, pagesKeys}, {&m.Page, pageKeys}, {&m.PerPage, perPageKeys}} {
		for _, k := range f.keys {
			v, ok := fields[k]
			if !ok || string(v) == "null" {
				continue
			}
			n, err := metaInt(v)
			if err != nil {
				return m, fmt.Errorf("%w: metadata field %q: %w", ErrDecode, k, err)
			}
			*f.dst = n
			break
		}
	}
	// Metadata that says nothing about the extent of the list is no help in
	// deciding where it ends.
	m.Found = m.Total >= 0 || m.Pages >= 0
	return m, nil
}

// metaInt accepts 12, 12.0 and "12": APIs are not consistent about it.
func metaInt(v json.RawMessage) (int, error) {
	s := string(v)
	if len(v) > 0 && v[0] == '"' {
		if err := json.Unmarshal(v, &s); err != nil {
			return 0, err
		}
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f != float64(int(f)) {
		return 0, fmt.Errorf("want a non-negative integer, got %s", v)
	}
	return int(f), nil
}

// splitItems cuts the array starting at body[start] into items.
func splitItems(body []byte, start int) ([]Item, error) {
	var items []Item
	i := skipSpace(body, start+1)
	if body[i] == ']' {
		return []Item{}, nil
	}
	// Page sizes are usually 100: counting commas would cost a pass.
	items = make([]Item, 0, 16)
	for {
		end := skipValue(body, i)
		raw := body[i:end]
		if raw[0] != '{' {
			return nil, fmt.Errorf("%w: item %d is %s, not an object", ErrDecode, len(items), kindOf(raw[0]))
		}
		id, err := itemID(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: item %d: %w", ErrDecode, len(items), err)
		}
		items = append(items, Item{ID: id, Raw: json.RawMessage(raw)})
		i = skipSpace(body, end)
		if body[i] == ']' {
			return items, nil
		}
		i = skipSpace(body, i+1) // the comma
	}
}

// ItemID returns the "id" of a JSON object in its string form.
func ItemID(obj []byte) (ID, error) {
	obj = bytes.TrimSpace(obj)
	if !json.Valid(obj) || len(obj) == 0 || obj[0] != '{' {
		return "", fmt.Errorf("%w: not a JSON object", ErrDecode)
	}
	return itemID(obj)
}

func itemID(obj []byte) (ID, error) {
	var raw []byte
	_ = eachMember(obj, 0, func(key []byte, valueStart, valueEnd int) error {
		if raw == nil && string(key) == "id" {
			raw = obj[valueStart:valueEnd]
		}
		return nil
	})
	switch {
	case raw == nil:
		return "", fmt.Errorf("no \"id\" field")
	case raw[0] == '"':
		// Escapes and invalid UTF-8 go through encoding/json, so an id reads
		// the same here as in every subscriber's decoder.
		if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
			if len(raw) == 2 {
				return "", fmt.Errorf("empty \"id\"")
			}
			return ID(raw[1 : len(raw)-1]), nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		if s == "" {
			return "", fmt.Errorf("empty \"id\"")
		}
		return ID(s), nil
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		return ID(raw), nil
	default:
		return "", fmt.Errorf("\"id\" is %s; want a string or a number", kindOf(raw[0]))
	}
}

// eachMember calls fn for every member of the object starting at b[start],
// with the key (unescaped only when it had escapes) and the value's bounds.
// b must be valid JSON.
func eachMember(b []byte, start int, fn func(key []byte, valueStart, valueEnd int) error) error {
	i := skipSpace(b, start+1)
	if b[i] == '}' {
		return nil
	}
	for {
		keyEnd := skipString(b, i)
		key := b[i+1 : keyEnd-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var s string
			if err := json.Unmarshal(b[i:keyEnd], &s); err != nil {
				return fmt.Errorf("%w: %w", ErrDecode, err)
			}
			key = []byte(s)
		}
		i = skipSpace(b, keyEnd)
		i = skipSpace(b, i+1) // the colon
		end := skipValue(b, i)
		if err := fn(key, i, end); err != nil {
			return err
		}
		i = skipSpace(b, end)
		if b[i] == '}' {
			return nil
		}
		i = skipSpace(b, i+1) // the comma
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string starting at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index just past the value starting at b[i]. It
// relies on b being valid JSON, checked once by the caller.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default:
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
		}
		return i
	}
}

func kindOf(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}
