package enginefake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// jnode is a JSON value that remembers its key order and the literal text of
// its scalars. Substituting a model name in a captured body therefore changes
// only that value: key order, number spelling (2048 vs 2048.0, 0.800000011920929)
// and escapes elsewhere stay exactly as the engine wrote them. Re-encoding an
// untouched capture gives back the same bytes (tested for every fixture).
type jnode struct {
	kind byte     // '{' object, '[' array, 0 scalar
	keys []string // object keys, parallel to vals
	vals []*jnode // object values or array elements
	raw  []byte   // scalar literal
	// trail is whitespace the engine wrote after a whole document (Go's
	// json.Encoder ends with "\n", so Ollama's /v1 bodies do).
	trail []byte
}

func parseJSON(b []byte) (*jnode, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("empty JSON")
	}
	switch b[0] {
	case '{', '[':
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		n := &jnode{kind: b[0]}
		for dec.More() {
			if n.kind == '{' {
				tok, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, _ := tok.(string)
				n.keys = append(n.keys, key)
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, err
			}
			child, err := parseJSON(raw)
			if err != nil {
				return nil, err
			}
			n.vals = append(n.vals, child)
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		if dec.More() {
			return nil, fmt.Errorf("trailing data after JSON value")
		}
		return n, nil
	default:
		if !json.Valid(b) {
			return nil, fmt.Errorf("invalid JSON scalar %.40q", b)
		}
		return &jnode{raw: append([]byte(nil), b...)}, nil
	}
}

func mustJSON(b []byte) *jnode {
	n, err := parseJSON(b)
	if err != nil {
		panic(err)
	}
	return n
}

// jv encodes a Go value as a scalar (or any) node, without Go's HTML escaping
// (the C++ and Python engines do not escape <, > and &).
func jv(v any) *jnode {
	if n, ok := v.(*jnode); ok {
		return n
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return mustJSON(buf.Bytes())
}

func (n *jnode) bytes() []byte {
	var buf bytes.Buffer
	n.write(&buf)
	buf.Write(n.trail)
	return buf.Bytes()
}

func (n *jnode) write(buf *bytes.Buffer) {
	switch n.kind {
	case '{':
		buf.WriteByte('{')
		for i, k := range n.keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(jv(k).raw)
			buf.WriteByte(':')
			n.vals[i].write(buf)
		}
		buf.WriteByte('}')
	case '[':
		buf.WriteByte('[')
		for i, v := range n.vals {
			if i > 0 {
				buf.WriteByte(',')
			}
			v.write(buf)
		}
		buf.WriteByte(']')
	default:
		buf.Write(n.raw)
	}
}

func (n *jnode) clone() *jnode {
	if n == nil {
		return nil
	}
	c := &jnode{kind: n.kind, raw: n.raw}
	c.keys = append([]string(nil), n.keys...)
	for _, v := range n.vals {
		c.vals = append(c.vals, v.clone())
	}
	return c
}

// get walks object keys (string) and array indexes (int); nil if absent.
func (n *jnode) get(path ...any) *jnode {
	cur := n
	for _, p := range path {
		if cur == nil {
			return nil
		}
		switch p := p.(type) {
		case string:
			idx := cur.index(p)
			if idx < 0 {
				return nil
			}
			cur = cur.vals[idx]
		case int:
			if cur.kind != '[' || p < 0 || p >= len(cur.vals) {
				return nil
			}
			cur = cur.vals[p]
		default:
			panic(fmt.Sprintf("bad path element %T", p))
		}
	}
	return cur
}

func (n *jnode) index(key string) int {
	if n == nil || n.kind != '{' {
		return -1
	}
	for i, k := range n.keys {
		if k == key {
			return i
		}
	}
	return -1
}

func (n *jnode) has(key string) bool { return n.index(key) >= 0 }

// set replaces the value of key in place (keeping its position) or appends it.
func (n *jnode) set(key string, v any) *jnode {
	if n.kind != '{' {
		panic("set on a non-object")
	}
	val := jv(v)
	if i := n.index(key); i >= 0 {
		n.vals[i] = val
	} else {
		n.keys = append(n.keys, key)
		n.vals = append(n.vals, val)
	}
	return n
}

// setIfPresent changes key only when the captured object has it, so a
// substitution never adds keys the engine did not send.
func (n *jnode) setIfPresent(key string, v any) {
	if n != nil && n.has(key) {
		n.set(key, v)
	}
}

// insertAfter adds key right after the key after (or at the end).
func (n *jnode) insertAfter(after, key string, v any) {
	if n.has(key) {
		n.set(key, v)
		return
	}
	i := n.index(after)
	if i < 0 {
		n.set(key, v)
		return
	}
	n.keys = append(n.keys[:i+1], append([]string{key}, n.keys[i+1:]...)...)
	n.vals = append(n.vals[:i+1], append([]*jnode{jv(v)}, n.vals[i+1:]...)...)
}

func (n *jnode) del(key string) {
	if i := n.index(key); i >= 0 {
		n.keys = append(n.keys[:i], n.keys[i+1:]...)
		n.vals = append(n.vals[:i], n.vals[i+1:]...)
	}
}

// str returns the value of a string scalar ("" for anything else).
func (n *jnode) str() string {
	if n == nil || n.kind != 0 || len(n.raw) == 0 || n.raw[0] != '"' {
		return ""
	}
	var s string
	if err := json.Unmarshal(n.raw, &s); err != nil {
		return ""
	}
	return s
}

func (n *jnode) isString() bool { return n != nil && n.kind == 0 && len(n.raw) > 0 && n.raw[0] == '"' }

func (n *jnode) isArray() bool { return n != nil && n.kind == '[' }

// replaceInStrings replaces old with new inside every string value below n
// (used for captured paths and presets that embed a model name).
func (n *jnode) replaceInStrings(old, new string) {
	if n == nil || old == new || old == "" {
		return
	}
	for i, v := range n.vals {
		if v.isString() {
			if s := v.str(); strings.Contains(s, old) {
				n.vals[i] = jv(strings.ReplaceAll(s, old, new))
			}
		} else {
			v.replaceInStrings(old, new)
		}
	}
}

// arr builds an array node from elements.
func arr(elems ...*jnode) *jnode { return &jnode{kind: '[', vals: elems} }

// obj builds an object node from alternating keys and values, in order.
func obj(kv ...any) *jnode {
	n := &jnode{kind: '{'}
	for i := 0; i+1 < len(kv); i += 2 {
		n.keys = append(n.keys, kv[i].(string))
		n.vals = append(n.vals, jv(kv[i+1]))
	}
	return n
}
