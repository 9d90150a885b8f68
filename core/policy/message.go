package policy

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Messages quote user input: these helpers keep that safe and short.

func renderPath(path []pathSeg) string {
	var b strings.Builder
	for _, s := range path {
		switch {
		case !s.isKey:
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		case isPlainKey(s.key):
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
		default:
			b.WriteString("[" + quote(s.key) + "]")
		}
	}
	// A deep path of long keys would echo too much input; the innermost
	// part is the useful one.
	out := b.String()
	if len(out) > maxEcho {
		n := len(out) - maxEcho
		for n < len(out) && !utf8.RuneStart(out[n]) {
			n++
		}
		out = "..." + out[n:]
	}
	return out
}

func isPlainKey(k string) bool {
	if k == "" || len(k) > maxEcho {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// quote renders user input for a message: escaped, so control characters
// cannot reach a terminal, and cut, so a huge value does not flood a log.
func quote(s string) string {
	head, more := split(s)
	return strconv.Quote(head) + more
}

func cut(s string) string {
	head, more := split(s)
	return head + more
}

// split returns at most maxEcho bytes of s, cut at a character boundary,
// and "..." when it had to cut.
func split(s string) (string, string) {
	if len(s) <= maxEcho {
		return s, ""
	}
	n := maxEcho
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], "..."
}

// describe names a value for "got ..." in messages.
func describe(v value) string {
	switch v.kind {
	case kindArray:
		return "an array"
	case kindObject:
		return "an object"
	case kindString:
		return quote(v.text)
	default:
		return cut(v.text)
	}
}

// appendJSON appends v encoded without HTML escaping, so stored strings
// read as the user wrote them. Invalid UTF-8 (only possible in a Policy
// built by hand) becomes U+FFFD, so the output is always valid JSON.
func appendJSON(b []byte, v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // strings and string slices always encode
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})...)
}
