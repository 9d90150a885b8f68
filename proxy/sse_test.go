package proxy

import (
	"bytes"
	"strings"
	"testing"
)

// feedAll pushes each read and returns the events forwarded, in order;
// atEOF ends the stream after the last read.
func feedAll(st *sseState, atEOF bool, reads ...string) []string {
	var out []string
	for i, r := range reads {
		// Each read lives in a buffer that the next read overwrites, as in
		// the relay: events must be taken before it is reused.
		buf := []byte(r)
		st.push(buf)
		last := atEOF && i == len(reads)-1
		for {
			ev, ok := st.next(last)
			if !ok {
				break
			}
			out = append(out, string(ev))
		}
		for j := range buf {
			buf[j] = 'X'
		}
	}
	if len(reads) == 0 && atEOF {
		for {
			ev, ok := st.next(true)
			if !ok {
				break
			}
			out = append(out, string(ev))
		}
	}
	return out
}

func TestSSEFraming(t *testing.T) {
	ev := `data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"delta":{"content":"Hi"}}]}`
	for name, sep := range map[string]string{"LF": "\n", "CRLF": "\r\n", "CR": "\r"} {
		t.Run(name, func(t *testing.T) {
			stream := ev + sep + sep + ": keep-alive" + sep + sep + "data:[DONE]" + sep + sep
			// Split at every byte: events are only ever forwarded whole, one
			// by one, and exactly as the engine sent them.
			var parts []string
			for i := range len(stream) {
				parts = append(parts, stream[i:i+1])
			}
			st := sseState{}
			got := feedAll(&st, true, parts...)
			want := []string{ev + sep + sep, ": keep-alive" + sep + sep, "data:[DONE]" + sep + sep}
			if !st.done || strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("done %v events %q", st.done, got)
			}
		})
	}
	// A partial event is held back, not sent.
	st := sseState{}
	if out := feedAll(&st, false, `data: {"a":`); len(out) != 0 {
		t.Fatalf("partial event sent: %q", out)
	}
	// Several events in one read come out one by one.
	st = sseState{}
	if out := feedAll(&st, false, "data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4"); len(out) != 3 || out[2] != "data: 3\n\n" {
		t.Fatalf("events of one read: %q", out)
	}
	if out := feedAll(&st, false, "\n\n"); len(out) != 1 || out[0] != "data: 4\n\n" {
		t.Fatalf("event completed by the next read: %q", out)
	}
}

// The stream carries exactly the engine's events: FLM adds none (no
// estimated usage, ever) and removes only a usage-only chunk the client did
// not ask for.
func TestSSEUsage(t *testing.T) {
	content := "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\n"
	usage := "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\" : [ ],\"usage\" : {\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n"
	done := "data: [DONE]\n\n"

	st := sseState{keepUsage: true}
	if got := strings.Join(feedAll(&st, true, content+usage+done), ""); got != content+usage+done {
		t.Fatalf("a client that asked for usage: %q", got)
	}
	st = sseState{keepUsage: false}
	if got := strings.Join(feedAll(&st, true, content+usage+done), ""); got != content+done {
		t.Fatalf("usage chunk not stripped for a client that did not ask: %q", got)
	}
	// A stream without usage gets none, whatever the client asked.
	for _, keep := range []bool{true, false} {
		st = sseState{keepUsage: keep}
		if got := strings.Join(feedAll(&st, true, content+done), ""); got != content+done || strings.Contains(got, "flm_estimated") {
			t.Fatalf("keepUsage %v: %q", keep, got)
		}
	}
	// Chunks with choices keep their usage (vLLM continuous_usage_stats);
	// a chunk without usage, a usage that is not an object, and text that
	// merely mentions "usage" are left alone.
	for _, ev := range []string{
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}],\"usage\":{\"total_tokens\":2}}\n\n",
		"data: {\"choices\":[]}\n\n",
		"data: {\"choices\":[],\"usage\":null}\n\n",
		"data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\":{} and \\\"choices\\\":[]\"}}]}\n\n",
		"data: {\"error\":{\"message\":\"usage\"}}\n\n",
	} {
		st = sseState{keepUsage: false}
		if got := strings.Join(feedAll(&st, false, ev), ""); got != ev {
			t.Errorf("%q became %q", ev, got)
		}
	}
	// Nested usage-only objects are not the chunk: only the top level counts.
	ev := "data: {\"choices\":[{\"index\":0,\"delta\":{}}],\"x\":{\"choices\":[],\"usage\":{}}}\n\n"
	st = sseState{}
	if got := strings.Join(feedAll(&st, false, ev), ""); got != ev {
		t.Fatalf("%q became %q", ev, got)
	}
	// A usage-only chunk without a choices field at all is stripped too.
	st = sseState{}
	if got := feedAll(&st, false, "data: {\"usage\":{\"total_tokens\":1}}\n\n"); len(got) != 0 {
		t.Fatalf("choices-less usage chunk kept: %q", got)
	}
}

// Whatever the engine sends and however it is split, FLM relays it byte for
// byte, event by event (a client that asked for usage; the rest is held
// until more bytes come).
func FuzzSSERelay(f *testing.F) {
	f.Add("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: [DONE]\n\n", uint8(3))
	f.Add("data: a\r\n\r\ndata: [DONE]\r\n\r\n", uint8(1))
	f.Add(": comment\n\nevent: x\ndata: 1\ndata: 2\n\n", uint8(7))
	f.Add("data: {\"choices\":[],\"usage\":{}}\r\rdata: [DONE]\r\r", uint8(2))
	f.Fuzz(func(t *testing.T, stream string, step uint8) {
		n := int(step%16) + 1
		st := sseState{keepUsage: true}
		var reads []string
		for i := 0; i < len(stream); i += n {
			reads = append(reads, stream[i:min(len(stream), i+n)])
		}
		events := feedAll(&st, true, reads...)
		out := []byte(strings.Join(events, ""))
		out = append(out, st.buf...)
		if !bytes.Equal(out, []byte(stream)) {
			t.Fatalf("relayed %q, got %q", stream, out)
		}
		for _, ev := range events {
			if len(ev) <= maxPendingEvent {
				if k, ok := nextEvent([]byte(ev), true); !ok || k != len(ev) {
					t.Fatalf("forwarded %q is not one whole event", ev)
				}
			}
		}
	})
}
