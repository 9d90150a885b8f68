package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// The stream converters write their events by appending to a byte slice:
// one event is a handful of fields, and going through encoding/json for
// each token of a stream costs more than the rest of the relay.

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// with encoding/json; U+2028 and U+2029 are escaped so the output is also
// safe inside JavaScript.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendKey appends "key": (key must not need escaping) after a comma
// unless the object was just opened.
func AppendKey(dst []byte, key string) []byte {
	if n := len(dst); n > 0 && dst[n-1] != '{' && dst[n-1] != '[' {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	return append(dst, '"', ':')
}

// AppendInt appends n.
func AppendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }

// AppendFloat appends f as encoding/json would.
func AppendFloat(dst []byte, f float64) []byte {
	b, err := json.Marshal(f)
	if err != nil { // NaN or Inf: never decoded from JSON
		return append(dst, "null"...)
	}
	return append(dst, b...)
}

// AppendNullableString appends s, or null when s is nil.
func AppendNullableString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return AppendString(dst, *s)
}

// Marshal encodes v like json.Marshal, without HTML escaping (engines and
// clients read JSON, not HTML) and without the trailing newline.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// CompactObject checks that raw is one JSON object and returns it compacted.
func CompactObject(raw []byte) ([]byte, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		return nil, false
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return nil, false
	}
	return buf.Bytes(), true
}

// DecodeRequest decodes a client's request body into v, a pointer to a
// struct. The body must be one JSON object in valid UTF-8. A value of the
// wrong type is reported with the field's path; unknown fields are ignored
// (clients send fields of newer API versions).
func DecodeRequest(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	switch {
	case len(body) == 0:
		return Invalid("", "the request body is empty; send a JSON object")
	case !utf8.Valid(body):
		return Invalid("", "the request body is not valid UTF-8")
	case body[0] != '{':
		if !json.Valid(body) {
			return Invalid("", "the request body is not valid JSON")
		}
		return Invalid("", "the request body must be a JSON object")
	}
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return Invalid(te.Field, "%s must be %s, not %s", Quote(te.Field), article(te.Type.Kind().String()), te.Value)
	case errors.As(err, &te):
		return Invalid("", "the request body must be a JSON object")
	case errors.As(err, &se):
		return Invalid("", "the request body is not valid JSON: %s at byte %d", se.Error(), se.Offset)
	}
	return Invalid("", "the request body is not valid JSON")
}

func article(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "true or false"
	case "int", "int64", "int32", "uint", "uint64":
		return "an integer"
	case "float64", "float32":
		return "a number"
	case "ptr":
		return "a value of another type"
	}
	return "a value of another type"
}
