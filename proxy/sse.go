package proxy

import (
	"bytes"
	"encoding/json"
	"strings"
)

// maxPendingEvent bounds an event without a terminator; past it the bytes
// are passed on as they are.
const maxPendingEvent = 1 << 20

// sseState frames an engine's event stream into whole events (any of the
// line endings SSE allows: LF, CRLF, CR) and decides which to forward.
// The caller pushes each read and then takes events with next until it
// reports none; events are slices of the read (no copy) unless one spans
// two reads.
type sseState struct {
	buf   []byte // bytes not yet framed: a suffix of the last read, or of store
	own   bool   // buf lives in store
	store []byte // an incomplete event kept between reads
	done  bool   // [DONE] was seen
	// keepUsage: the client asked for usage (stream_options.include_usage),
	// so a usage-only chunk is passed on.
	keepUsage bool
	// baseURL is the engine's, redacted from its error events.
	baseURL string
}

// push adds a read from the engine. The previous read's events must all
// have been taken.
func (st *sseState) push(in []byte) {
	if len(in) == 0 {
		return
	}
	if len(st.buf) == 0 {
		st.buf, st.own = in, false
		return
	}
	st.store = append(append(st.store[:0], st.buf...), in...)
	st.buf, st.own = st.store, true
}

// next returns the next event to forward (valid until the next push), or
// false when no complete one is left; the rest is kept for the next push.
// atEOF: the engine's stream ended, so a last event ended by a lone CR is
// complete.
func (st *sseState) next(atEOF bool) ([]byte, bool) {
	for len(st.buf) > 0 {
		n, ok := nextEvent(st.buf, atEOF)
		if !ok {
			if len(st.buf) <= maxPendingEvent {
				break
			}
			n = len(st.buf) // too long to hold: passed on as it is
		}
		ev := st.buf[:n]
		st.buf = st.buf[n:]
		if ok {
			var keep bool
			if ev, keep = st.filter(ev); !keep {
				continue
			}
		}
		return ev, true
	}
	st.save()
	return nil, false
}

// save moves an incomplete event out of the caller's read buffer, which
// the next read overwrites.
func (st *sseState) save() {
	switch {
	case len(st.buf) == 0:
		st.buf, st.own = nil, false
		if cap(st.store) > 64<<10 {
			st.store = nil // a huge event passed; do not hold its memory for the stream's life
		}
	case !st.own:
		st.store = append(st.store[:0], st.buf...)
		st.buf, st.own = st.store, true
	}
}

// filter notes [DONE] and returns the event to forward: false for a
// usage-only chunk the client did not ask for; the engine's error event
// with its message redacted (see redactErrorEvent); else ev as it is.
func (st *sseState) filter(ev []byte) ([]byte, bool) {
	data, ok := eventData(ev)
	if !ok {
		return ev, true
	}
	if string(bytes.TrimSpace(data)) == "[DONE]" {
		st.done = true
		return ev, true
	}
	if !st.keepUsage && usageOnly(data) {
		return nil, false
	}
	if red, ok := redactErrorData(data, st.baseURL); ok {
		return rebuildEvent(ev, red), true
	}
	return ev, true
}

var errorField = []byte(`"error"`)

// redactErrorData returns an event's data with the engine's error message
// redacted as a non-streamed error's is (redactEngineText): engines
// report their failures in the stream too — OpenAI's {"error":{"message":
// …}}, the {"error":"…"} of some, Anthropic's {"type":"error","error":
// {…}} — and quote their internal URLs and model files in them. Only the
// message string changes: the other fields stay, the keys keep their
// order. ok is false when data is no error event or nothing in it needed
// redacting (the usual chunk costs one bytes.Contains).
func redactErrorData(data []byte, baseURL string) ([]byte, bool) {
	if !bytes.Contains(data, errorField) {
		return nil, false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return nil, false
	}
	msgRaw := top["error"]
	if len(msgRaw) > 0 && msgRaw[0] == '{' {
		var inner map[string]json.RawMessage
		if json.Unmarshal(msgRaw, &inner) != nil {
			return nil, false
		}
		msgRaw = inner["message"]
	}
	var msg string
	if len(msgRaw) == 0 || msgRaw[0] != '"' || json.Unmarshal(msgRaw, &msg) != nil {
		return nil, false
	}
	red := redactEngineText(msg, baseURL)
	if red == msg {
		return nil, false
	}
	var enc bytes.Buffer
	je := json.NewEncoder(&enc)
	je.SetEscapeHTML(false) // "<url>", not "\u003curl\u003e"
	if je.Encode(red) != nil {
		return nil, false
	}
	// Every copy of the quoted message, wherever it is: more redaction,
	// never less.
	return bytes.ReplaceAll(data, msgRaw, bytes.TrimSuffix(enc.Bytes(), []byte("\n"))), true
}

// rebuildEvent is ev with its data lines replaced by data (one data line
// per line of it, where the first was), its other lines kept, LF endings.
func rebuildEvent(ev, data []byte) []byte {
	out := make([]byte, 0, len(ev)+len(data))
	wrote := false
	for len(ev) > 0 {
		i := bytes.IndexAny(ev, "\r\n")
		if i < 0 {
			i = len(ev)
		}
		line := ev[:i]
		switch {
		case i == len(ev):
			ev = nil
		case ev[i] == '\r' && i+1 < len(ev) && ev[i+1] == '\n':
			ev = ev[i+2:]
		default:
			ev = ev[i+1:]
		}
		if len(line) == 0 {
			break // the blank line that ends the event
		}
		if !bytes.HasPrefix(line, dataField) {
			out = append(append(out, line...), '\n')
			continue
		}
		if wrote {
			continue
		}
		wrote = true
		for l := range bytes.SplitSeq(data, []byte("\n")) {
			out = append(append(append(out, "data: "...), l...), '\n')
		}
	}
	return append(out, '\n')
}

// redactEngineText removes from an engine's message — an error answer's
// or a stream's error event — what would tell a key holder where FLM's
// engines and their files live: file paths (redactPaths), then URLs and
// addresses (redactAddrs).
func redactEngineText(msg, baseURL string) string {
	return redactAddrs(redactPaths(msg), baseURL)
}

// redactPaths replaces the file paths in msg with "<path>": engines name
// the model files they fail on (llama-server: failed to load model
// '/home/alice/models/x.gguf'), and the paths tell a key holder the
// host's user names and layout. A path starts a word (after a space,
// quote, bracket, "=" or ","): "/" followed by at least two segments,
// "~/…", a Windows drive ("C:\…", "C:/…") or a share ("\\host\…"). It ends
// at a space, quote, bracket, ":", ";" or ",", without the prose
// punctuation after it. An API route (/v1/…, /api/…) and a single
// segment ("/completion") are left: they name no file.
func redactPaths(msg string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(msg); i++ {
		if i > 0 && !pathStart(msg[i-1]) {
			continue
		}
		n := pathLen(msg[i:])
		if n == 0 {
			continue
		}
		b.WriteString(msg[last:i])
		b.WriteString("<path>")
		last = i + n
		i = last - 1
	}
	if last == 0 {
		return msg
	}
	b.WriteString(msg[last:])
	return b.String()
}

func pathStart(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '"', '\'', '`', '(', '[', '{', '=', ',':
		return true
	}
	return false
}

// pathLen is the length of the path at the start of s, or 0.
func pathLen(s string) int {
	end := strings.IndexAny(s, " \t\r\n\"'`()[]{}<>,;:|")
	switch {
	case len(s) > 3 && isLetter(s[0]) && s[1] == ':' && (s[2] == '\\' || s[2] == '/'):
		// A drive's ":" is not the path's end.
		if e := strings.IndexAny(s[2:], " \t\r\n\"'`()[]{}<>,;:|"); e >= 0 {
			end = e + 2
		} else {
			end = -1
		}
	case len(s) > 2 && s[0] == '\\' && s[1] == '\\':
	case len(s) > 2 && s[0] == '~' && s[1] == '/':
	case len(s) > 1 && s[0] == '/':
	default:
		return 0
	}
	if end < 0 {
		end = len(s)
	}
	p := strings.TrimRight(s[:end], ".!?")
	switch {
	case p[0] == '/':
		if strings.Count(p, "/") < 2 || len(strings.Trim(p, "/")) == 0 ||
			strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/api/") {
			return 0
		}
	case p[0] == '\\':
		if !strings.Contains(p[2:], "\\") {
			return 0
		}
	case p[0] == '~':
		if len(p) < 3 {
			return 0
		}
	case len(p) < 4: // a drive and nothing after it
		return 0
	}
	return len(p)
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// usageOnly reports a chunk that carries usage and no choices: the last
// chunk of a stream with stream_options.include_usage, which some engines
// send unasked (vLLM --enable-force-include-usage). Clients that read
// choices[0] of every chunk fail on it.
func usageOnly(data []byte) bool {
	if !bytes.Contains(data, []byte(`"usage"`)) {
		return false
	}
	var v struct {
		Choices []json.RawMessage `json:"choices"`
		Usage   json.RawMessage   `json:"usage"`
	}
	if json.Unmarshal(data, &v) != nil {
		return false
	}
	return len(v.Choices) == 0 && len(v.Usage) > 0 && v.Usage[0] == '{'
}

// nextEvent returns the length of the first complete event in b (its
// lines and the blank line that ends it).
func nextEvent(b []byte, atEOF bool) (int, bool) {
	lineStart := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\n' && c != '\r' {
			continue
		}
		end := i + 1
		if c == '\r' {
			if i+1 == len(b) && !atEOF {
				return 0, false // a CR at the end may be the first half of CRLF
			}
			if i+1 < len(b) && b[i+1] == '\n' {
				end = i + 2
			}
		}
		if i == lineStart {
			return end, true
		}
		lineStart = end
		i = end - 1
	}
	return 0, false
}

var (
	dataField = []byte("data:")
	space     = []byte(" ")
)

// eventData is the event's data: its "data:" lines' values joined by
// newlines. The usual single line is returned without a copy.
func eventData(ev []byte) ([]byte, bool) {
	var data []byte
	lines := 0
	for len(ev) > 0 {
		i := bytes.IndexAny(ev, "\r\n")
		line := ev
		if i >= 0 {
			line, ev = ev[:i], ev[i+1:]
		} else {
			ev = nil
		}
		v, ok := bytes.CutPrefix(line, dataField)
		if !ok {
			continue
		}
		v, _ = bytes.CutPrefix(v, space)
		switch lines {
		case 0:
			data = v
		case 1:
			data = append(append(append([]byte(nil), data...), '\n'), v...)
		default:
			data = append(append(data, '\n'), v...)
		}
		lines++
	}
	return data, lines > 0
}
