package gateway

import (
	"encoding/json"
	"errors"
)

// A small scanner for the top level of a JSON object. The proxy reads only
// a few fields of a request ("model", "stream", "n", "stream_options", the
// roles of "messages") and rewrites one or two; decoding the whole body into
// maps and encoding it again cost more than the rest of the request path.
// Inputs are checked with json.Valid first, so the scanner can trust the
// syntax and only has to find where things are.

// member is one member of an object: its decoded key and the byte spans of
// the raw key (with quotes) and of the value.
type member struct {
	key              string
	keyStart, keyEnd int // the raw key, quotes included
	vStart, vEnd     int
}

var errNotObject = errors.New("not a JSON object")

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"',
// and whether it contains escapes.
func skipString(b []byte, i int) (int, bool) {
	esc := false
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			esc = true
			i++
		case '"':
			return i + 1, esc
		}
	}
	return len(b), esc
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		j, _ := skipString(b, i)
		return j
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				j, _ := skipString(b, i)
				i = j - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' && b[i] != '\t' && b[i] != '\r' {
		i++
	}
	return i
}

// members lists the members of the object at b[i] (valid JSON). Keys are
// decoded, so "mod\u0065l" is "model", as every JSON reader sees it.
func members(b []byte, i int, out []member) ([]member, error) {
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '{' {
		return nil, errNotObject
	}
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] != '}' {
		ks := i
		ke, esc := skipString(b, i)
		key := string(b[ks+1 : ke-1])
		if esc {
			if err := json.Unmarshal(b[ks:ke], &key); err != nil {
				return nil, err
			}
		}
		i = skipSpace(b, ke)
		i = skipSpace(b, i+1) // ':'
		vs := i
		i = skipValue(b, i)
		out = append(out, member{key: key, keyStart: ks, keyEnd: ke, vStart: vs, vEnd: i})
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return out, nil
}

// elements lists the value spans of the array at b[i] (valid JSON).
func elements(b []byte, i int, out [][2]int) [][2]int {
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] != ']' {
		s := i
		i = skipValue(b, i)
		out = append(out, [2]int{s, i})
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return out
}

// stringValue decodes a JSON string value; ok is false for other types.
func stringValue(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if _, esc := skipString(raw, 0); !esc {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// duplicate returns a key that appears twice, if any: readers disagree on
// which one wins, so a request that has one is refused.
func duplicate(ms []member) string {
	if len(ms) < 16 {
		for i := range ms {
			for j := i + 1; j < len(ms); j++ {
				if ms[i].key == ms[j].key {
					return ms[i].key
				}
			}
		}
		return ""
	}
	seen := make(map[string]struct{}, len(ms))
	for _, m := range ms {
		if _, ok := seen[m.key]; ok {
			return m.key
		}
		seen[m.key] = struct{}{}
	}
	return ""
}
