package policy

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The policy is parsed by hand rather than with encoding/json because the
// rules that keep it unambiguous need information encoding/json discards:
// duplicate keys, the exact spelling of numbers, byte offsets for messages,
// and the raw text of fields to keep.

const (
	maxDepth      = 32
	maxArrayItems = 10000
	maxEcho       = 64 // bytes of user input quoted in one message
)

type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// value is one parsed JSON value. start and end delimit its text in the
// document, so numbers and strings can be written back exactly as given.
type value struct {
	kind       kind
	start, end int
	text       string // decoded string, or the literal of a number/true/false/null
	elems      []value
	members    []member
}

type member struct {
	key string // decoded
	val value
}

// pathSeg lets the generic parser say where in the document it found a
// problem without building path strings on the success path.
type pathSeg struct {
	key   string
	index int
	isKey bool
}

type parser struct {
	doc   []byte
	pos   int
	depth int
	path  []pathSeg
}

type parseError struct{ msg string }

func (e *parseError) Error() string { return e.msg }

func (p *parser) fail(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if where := renderPath(p.path); where != "" {
		msg = where + ": " + msg
	}
	return &parseError{msg}
}

func (p *parser) syntax(what string) error {
	return &parseError{fmt.Sprintf("invalid JSON at byte %d: %s", p.pos, what)}
}

func renderPath(path []pathSeg) string {
	var b strings.Builder
	for _, s := range path {
		if !s.isKey {
			b.WriteString("[")
			b.WriteString(strconv.Itoa(s.index))
			b.WriteString("]")
			continue
		}
		if isPlainKey(s.key) {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
			continue
		}
		b.WriteString("[")
		b.WriteString(quote(s.key))
		b.WriteString("]")
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

// parseDocument parses the whole document, which must be exactly one JSON
// value followed by nothing but whitespace.
func parseDocument(doc []byte) (value, error) {
	p := &parser{doc: doc}
	v, err := p.value()
	if err != nil {
		return value{}, err
	}
	if v.kind != kindObject {
		return value{}, &parseError{"document must be a JSON object, got " + describe(v)}
	}
	p.skipSpace()
	if p.pos < len(p.doc) {
		return value{}, &parseError{fmt.Sprintf("unexpected data after the JSON object at byte %d", p.pos)}
	}
	return v, nil
}

func (p *parser) skipSpace() {
	for p.pos < len(p.doc) {
		switch p.doc[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value() (value, error) {
	p.skipSpace()
	if p.pos >= len(p.doc) {
		return value{}, p.syntax("unexpected end of document")
	}
	start := p.pos
	switch c := p.doc[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, err := p.str()
		return value{kind: kindString, start: start, end: p.pos, text: s}, err
	case c == '-' || '0' <= c && c <= '9':
		if err := p.number(); err != nil {
			return value{}, err
		}
		return value{kind: kindNumber, start: start, end: p.pos, text: string(p.doc[start:p.pos])}, nil
	case c == 't':
		return p.literal("true", kindBool)
	case c == 'f':
		return p.literal("false", kindBool)
	case c == 'n':
		return p.literal("null", kindNull)
	default:
		return value{}, p.syntax("unexpected " + describeByte(p.doc[p.pos:]))
	}
}

func describeByte(rest []byte) string {
	r, _ := utf8.DecodeRune(rest)
	if r == '\uFEFF' {
		return "byte order mark (save the file as UTF-8 without BOM)"
	}
	return "character " + strconv.QuoteRune(r)
}

func (p *parser) literal(lit string, k kind) (value, error) {
	start := p.pos
	if len(p.doc)-p.pos < len(lit) || string(p.doc[p.pos:p.pos+len(lit)]) != lit {
		return value{}, p.syntax("invalid literal (expected " + lit + ")")
	}
	p.pos += len(lit)
	return value{kind: k, start: start, end: p.pos, text: lit}, nil
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.fail("nesting deeper than %d levels at byte %d", maxDepth, p.pos)
	}
	return nil
}

func (p *parser) object() (value, error) {
	v := value{kind: kindObject, start: p.pos}
	if err := p.enter(); err != nil {
		return value{}, err
	}
	p.pos++ // '{'
	p.skipSpace()
	if p.pos < len(p.doc) && p.doc[p.pos] == '}' {
		p.pos++
		p.depth--
		v.end = p.pos
		return v, nil
	}
	seen := make(map[string]struct{})
	for {
		p.skipSpace()
		if p.pos >= len(p.doc) || p.doc[p.pos] != '"' {
			if p.pos >= len(p.doc) {
				return value{}, p.syntax("unexpected end of document, expected an object key")
			}
			return value{}, p.syntax("expected a string object key, got " + describeByte(p.doc[p.pos:]))
		}
		keyAt := p.pos
		key, err := p.str()
		if err != nil {
			return value{}, err
		}
		if _, dup := seen[key]; dup {
			return value{}, p.fail("duplicate key %s at byte %d", quote(key), keyAt)
		}
		seen[key] = struct{}{}
		p.skipSpace()
		if p.pos >= len(p.doc) || p.doc[p.pos] != ':' {
			return value{}, p.syntax("expected ':' after object key")
		}
		p.pos++
		p.path = append(p.path, pathSeg{key: key, isKey: true})
		val, err := p.value()
		if err != nil {
			return value{}, err
		}
		p.path = p.path[:len(p.path)-1]
		v.members = append(v.members, member{key: key, val: val})
		p.skipSpace()
		if p.pos < len(p.doc) && p.doc[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.pos < len(p.doc) && p.doc[p.pos] == '}' {
			p.pos++
			break
		}
		return value{}, p.syntax("expected ',' or '}' after object member")
	}
	p.depth--
	v.end = p.pos
	return v, nil
}

func (p *parser) array() (value, error) {
	v := value{kind: kindArray, start: p.pos}
	if err := p.enter(); err != nil {
		return value{}, err
	}
	p.pos++ // '['
	p.skipSpace()
	if p.pos < len(p.doc) && p.doc[p.pos] == ']' {
		p.pos++
		p.depth--
		v.end = p.pos
		return v, nil
	}
	for {
		if len(v.elems) == maxArrayItems {
			return value{}, p.fail("more than %d entries in one array", maxArrayItems)
		}
		p.path = append(p.path, pathSeg{index: len(v.elems)})
		el, err := p.value()
		if err != nil {
			return value{}, err
		}
		p.path = p.path[:len(p.path)-1]
		v.elems = append(v.elems, el)
		p.skipSpace()
		if p.pos < len(p.doc) && p.doc[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.pos < len(p.doc) && p.doc[p.pos] == ']' {
			p.pos++
			break
		}
		return value{}, p.syntax("expected ',' or ']' after array element")
	}
	p.depth--
	v.end = p.pos
	return v, nil
}

// number checks the RFC 8259 number grammar; the caller keeps the literal.
func (p *parser) number() error {
	digits := func() int {
		n := 0
		for p.pos < len(p.doc) && '0' <= p.doc[p.pos] && p.doc[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.doc[p.pos] == '-' {
		p.pos++
	}
	if p.pos < len(p.doc) && p.doc[p.pos] == '0' {
		p.pos++
		if p.pos < len(p.doc) && '0' <= p.doc[p.pos] && p.doc[p.pos] <= '9' {
			return p.syntax("numbers must not have leading zeros")
		}
	} else if digits() == 0 {
		return p.syntax("invalid number")
	}
	if p.pos < len(p.doc) && p.doc[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return p.syntax("invalid number: expected a digit after '.'")
		}
	}
	if p.pos < len(p.doc) && (p.doc[p.pos] == 'e' || p.doc[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.doc) && (p.doc[p.pos] == '+' || p.doc[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return p.syntax("invalid number: expected a digit in the exponent")
		}
	}
	return nil
}

// str parses a string starting at the opening quote and returns it decoded.
// The document is already known to be valid UTF-8.
func (p *parser) str() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	for p.pos < len(p.doc) {
		c := p.doc[p.pos]
		if c == '"' {
			s := string(p.doc[start:p.pos])
			p.pos++
			return s, nil
		}
		if c == '\\' {
			return p.strSlow(start)
		}
		if c < 0x20 {
			return "", p.syntax("control character in string (escape it)")
		}
		p.pos++
	}
	return "", p.syntax("unterminated string")
}

func (p *parser) strSlow(start int) (string, error) {
	buf := append([]byte(nil), p.doc[start:p.pos]...)
	for p.pos < len(p.doc) {
		c := p.doc[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(buf), nil
		case c < 0x20:
			return "", p.syntax("control character in string (escape it)")
		case c != '\\':
			buf = append(buf, c)
			p.pos++
			continue
		}
		if p.pos+1 >= len(p.doc) {
			break
		}
		p.pos++
		switch e := p.doc[p.pos]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, err := p.unicodeEscape()
			if err != nil {
				return "", err
			}
			buf = utf8.AppendRune(buf, r)
			continue // unicodeEscape left pos after the escape
		default:
			return "", p.syntax("invalid escape in string")
		}
		p.pos++
	}
	return "", p.syntax("unterminated string")
}

// unicodeEscape decodes \uXXXX (pos at the 'u'), joining surrogate pairs.
// A lone surrogate is rejected: it is not a character, and decoding it to
// U+FFFD as encoding/json does would let two different keys collide.
func (p *parser) unicodeEscape() (rune, error) {
	r1, ok := p.hex4(p.pos + 1)
	if !ok {
		return 0, p.syntax(`invalid \u escape in string`)
	}
	p.pos += 5
	if !utf16.IsSurrogate(r1) {
		return r1, nil
	}
	if r1 < 0xDC00 && p.pos+1 < len(p.doc) && p.doc[p.pos] == '\\' && p.doc[p.pos+1] == 'u' {
		if r2, ok := p.hex4(p.pos + 2); ok && 0xDC00 <= r2 && r2 <= 0xDFFF {
			p.pos += 6
			return utf16.DecodeRune(r1, r2), nil
		}
	}
	return 0, p.syntax(`lone UTF-16 surrogate in \u escape`)
}

func (p *parser) hex4(at int) (rune, bool) {
	if at+4 > len(p.doc) {
		return 0, false
	}
	var r rune
	for _, c := range p.doc[at : at+4] {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// describe names a value for "got ..." in messages.
func describe(v value) string {
	switch v.kind {
	case kindNull:
		return "null"
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

// appendCompact writes v without insignificant whitespace. Strings and
// numbers are copied byte for byte, so a kept field is written back exactly
// as the user spelled it.
func appendCompact(b, doc []byte, v value) []byte {
	switch v.kind {
	case kindArray:
		b = append(b, '[')
		for i, el := range v.elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCompact(b, doc, el)
		}
		return append(b, ']')
	case kindObject:
		b = append(b, '{')
		for i, m := range v.members {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, m.key)
			b = append(b, ':')
			b = appendCompact(b, doc, m.val)
		}
		return append(b, '}')
	default:
		return append(b, doc[v.start:v.end]...)
	}
}

// appendString writes s as a JSON string. Invalid UTF-8 (only possible in
// a Policy built by hand) becomes U+FFFD so the output is always valid.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			} else {
				b = append(b, c)
			}
		}
		i++
	}
	return append(b, '"')
}
