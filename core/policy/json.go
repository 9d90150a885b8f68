package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The document is read token by token with encoding/json's Decoder into a
// tree that keeps what the policy's rules need and json.Unmarshal would lose:
// every key in order (duplicates are refused), the text of each value
// (extension fields and number spellings are kept exactly) and byte offsets
// for messages. The Decoder silently turns invalid UTF-8 and lone UTF-16
// surrogates into U+FFFD, so Parse refuses the first before and
// loneSurrogate the second after.

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

// value is one parsed JSON value.
type value struct {
	kind    kind
	raw     []byte // the value's text in the document
	text    string // a string's decoded text; the literal of any other scalar
	elems   []value
	members []member
}

type member struct {
	key string // decoded
	val value
}

// pathSeg lets the walker say where in the document it found a problem
// without building path strings on the success path.
type pathSeg struct {
	key   string
	index int
	isKey bool
}

type walker struct {
	doc  []byte
	dec  *json.Decoder
	path []pathSeg
}

type parseError struct{ msg string }

func (e *parseError) Error() string { return e.msg }

// parseDocument parses the whole document, which must be exactly one JSON
// object followed by nothing but whitespace.
func parseDocument(doc []byte) (value, error) {
	w := &walker{doc: doc, dec: json.NewDecoder(bytes.NewReader(doc))}
	w.dec.UseNumber()
	v, err := w.value(1)
	if err != nil {
		return value{}, err
	}
	if v.kind != kindObject {
		return value{}, &parseError{"document must be a JSON object, got " + describe(v)}
	}
	if at := w.skip(" \t\r\n"); at < len(doc) {
		return value{}, &parseError{fmt.Sprintf("unexpected data after the JSON object at byte %d", at)}
	}
	if at := loneSurrogate(doc); at >= 0 {
		return value{}, syntaxAt(at, `lone UTF-16 surrogate in \u escape`)
	}
	return v, nil
}

// skip returns the offset of the first byte at or after the decoder's
// position that is not in set. Between two tokens there is only whitespace
// and the ':' or ',' the decoder consumes with the next token.
func (w *walker) skip(set string) int {
	i := int(w.dec.InputOffset())
	for i < len(w.doc) && strings.IndexByte(set, w.doc[i]) >= 0 {
		i++
	}
	return i
}

func (w *walker) value(depth int) (value, error) {
	start := w.skip(" \t\r\n:,")
	tok, err := w.dec.Token()
	if err != nil {
		return value{}, w.syntax(err, "")
	}
	var v value
	switch t := tok.(type) {
	case json.Delim: // '{' or '['; Token reports a misplaced '}' or ']' as an error
		if depth > maxDepth {
			return value{}, w.fail("nesting deeper than %d levels at byte %d", maxDepth, start)
		}
		if t == '{' {
			v.kind, err = kindObject, w.object(&v, depth)
		} else {
			v.kind, err = kindArray, w.array(&v, depth)
		}
		if err != nil {
			return value{}, err
		}
	case string:
		v.kind, v.text = kindString, t
	case json.Number:
		v.kind, v.text = kindNumber, string(t)
	case bool:
		v.kind, v.text = kindBool, strconv.FormatBool(t)
	default:
		v.kind, v.text = kindNull, "null"
	}
	v.raw = w.doc[start:w.dec.InputOffset()]
	return v, nil
}

func (w *walker) object(v *value, depth int) error {
	seen := make(map[string]struct{})
	for w.dec.More() {
		at := w.skip(" \t\r\n,")
		tok, err := w.dec.Token()
		if err != nil {
			return w.syntax(err, "an object key")
		}
		key, _ := tok.(string) // Token returns only strings in key position
		if _, dup := seen[key]; dup {
			return w.fail("duplicate key %s at byte %d", quote(key), at)
		}
		seen[key] = struct{}{}
		w.path = append(w.path, pathSeg{key: key, isKey: true})
		val, err := w.value(depth + 1)
		if err != nil {
			return err
		}
		w.path = w.path[:len(w.path)-1]
		v.members = append(v.members, member{key: key, val: val})
	}
	if len(v.members) == 0 {
		return w.end("an object key or '}'")
	}
	return w.end("',' or '}'")
}

func (w *walker) array(v *value, depth int) error {
	for w.dec.More() {
		if len(v.elems) == maxArrayItems {
			return w.fail("more than %d entries in one array", maxArrayItems)
		}
		w.path = append(w.path, pathSeg{index: len(v.elems)})
		el, err := w.value(depth + 1)
		if err != nil {
			return err
		}
		w.path = w.path[:len(w.path)-1]
		v.elems = append(v.elems, el)
	}
	return w.end("',' or ']'")
}

// end reads the closing '}' or ']'.
func (w *walker) end(expect string) error {
	if _, err := w.dec.Token(); err != nil {
		return w.syntax(err, expect)
	}
	return nil
}

func (w *walker) fail(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if where := renderPath(w.path); where != "" {
		msg = where + ": " + msg
	}
	return &parseError{msg}
}

// syntax turns a Decoder error into a message that says what was wrong in
// the user's terms; expect is what the walker was reading ("" for a value).
// The Decoder stops at the offending byte, or at the start of the value
// (string, number, literal) it could not read.
func (w *walker) syntax(err error, expect string) error {
	at := w.skip(" \t\r\n")
	rest := w.doc[at:]
	msg, eof := err.Error(), errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	var c byte
	if len(rest) > 0 {
		c = rest[0]
	}
	var what string
	switch {
	case '0' <= c && c <= '9' && at > 0 && w.doc[at-1] == '0':
		what = "numbers must not have leading zeros"
	case strings.Contains(msg, "after object key:value pair"):
		what = "expected ',' or '}' after object member"
	case strings.Contains(msg, "after array element"):
		what = "expected ',' or ']' after array element"
	case strings.Contains(msg, "after object key"):
		what = "expected ':' after object key"
	case c == '"' && eof:
		what = "unterminated string"
	case c == '"' && strings.Contains(msg, "escape code"):
		what = "invalid escape in string"
	case c == '"' && strings.Contains(msg, `\u`):
		what = `invalid \u escape in string`
	case c == '"':
		what = "control character in string (escape it)"
	case c == 0 && eof && expect != "":
		what = "unexpected end of document, expected " + expect
	case c == 0 && eof:
		what = "unexpected end of document"
	case c == 't', c == 'f', c == 'n':
		what = "invalid literal (expected " + map[byte]string{'t': "true", 'f': "false", 'n': "null"}[c] + ")"
	case c == '-' || '0' <= c && c <= '9':
		what = "invalid number"
		if strings.Contains(msg, "decimal point") {
			what += ": expected a digit after '.'"
		} else if strings.Contains(msg, "exponent") {
			what += ": expected a digit in the exponent"
		}
	case expect == "an object key":
		what = "expected a string object key, got " + describeByte(rest)
	default:
		what = "unexpected " + describeByte(rest)
	}
	return syntaxAt(at, what)
}

func syntaxAt(at int, what string) error {
	return &parseError{fmt.Sprintf("invalid JSON at byte %d: %s", at, what)}
}

func describeByte(rest []byte) string {
	r, _ := utf8.DecodeRune(rest)
	if r == '\uFEFF' {
		return "byte order mark (save the file as UTF-8 without BOM)"
	}
	return "character " + strconv.QuoteRune(r)
}

// loneSurrogate returns the offset of the first \u escape in doc, which is
// valid JSON, that is half of a UTF-16 surrogate pair without its other
// half, or -1. Such an escape is not a character, and decoding it to U+FFFD
// as encoding/json does would let two different keys collide.
func loneSurrogate(doc []byte) int {
	hex := func(i int) uint64 {
		if i+6 > len(doc) || doc[i] != '\\' || doc[i+1] != 'u' {
			return 0
		}
		n, _ := strconv.ParseUint(string(doc[i+2:i+6]), 16, 32)
		return n
	}
	for i := 0; i < len(doc); i++ {
		if doc[i] != '\\' {
			continue
		}
		switch r := hex(i); {
		case i+1 >= len(doc) || doc[i+1] != 'u': // a one-character escape, \\ included
			i++
		case r < 0xD800 || r > 0xDFFF:
			i += 5
		case r < 0xDC00 && hex(i+6) >= 0xDC00 && hex(i+6) <= 0xDFFF:
			i += 11
		default:
			return i
		}
	}
	return -1
}
