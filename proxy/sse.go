package proxy

import (
	"bytes"
	"encoding/json"
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
		if ok && st.drop(ev) {
			continue
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

// drop notes [DONE] and reports an event not to forward: a usage-only
// chunk the client did not ask for.
func (st *sseState) drop(ev []byte) bool {
	data, ok := eventData(ev)
	if !ok {
		return false
	}
	if string(bytes.TrimSpace(data)) == "[DONE]" {
		st.done = true
		return false
	}
	return !st.keepUsage && usageOnly(data)
}

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
