package proxy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func feedAll(st *sseState, chunks ...string) string {
	var out []byte
	for _, c := range chunks {
		out = append(out, st.feed([]byte(c))...)
	}
	return string(out)
}

func TestSSEFraming(t *testing.T) {
	ev := `data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"delta":{"content":"Hi"}}]}`
	for name, sep := range map[string]string{"LF": "\n", "CRLF": "\r\n", "CR": "\r"} {
		t.Run(name, func(t *testing.T) {
			stream := ev + sep + sep + "data:[DONE]" + sep + sep
			// Split at every byte: events are only ever sent whole.
			var parts []string
			for i := range len(stream) {
				parts = append(parts, stream[i:i+1])
			}
			st := sseState{addUsage: true}
			out := feedAll(&st, parts...) + string(st.finish())
			if !st.done || st.chunks != 1 {
				t.Fatalf("done %v chunks %d", st.done, st.chunks)
			}
			i := strings.Index(out, `"flm_estimated":true`)
			if i < 0 || !strings.HasPrefix(out, ev+sep+sep) || !strings.HasSuffix(out, "data:[DONE]"+sep+sep) || i > strings.Index(out, "[DONE]") {
				t.Fatalf("out = %q", out)
			}
		})
	}
	// A partial event is held back, not sent.
	st := sseState{}
	if out := feedAll(&st, `data: {"a":`); out != "" {
		t.Fatalf("partial event sent: %q", out)
	}
}

func TestSSEUsage(t *testing.T) {
	withUsage := "data: {\"choices\":[],\"usage\" : {\"total_tokens\":3}}\n\ndata: [DONE]\n\n"
	st := sseState{addUsage: true}
	if out := feedAll(&st, withUsage); out != withUsage {
		t.Fatalf("a stream with usage was changed: %q", out)
	}
	noUsage := "data: {\"id\":\"c1\",\"object\":\"text_completion\",\"created\":7,\"model\":\"m\",\"choices\":[{\"text\":\"a\"}]}\n\n" +
		"data: {\"id\":\"c1\",\"object\":\"text_completion\",\"created\":7,\"model\":\"m\",\"choices\":[{\"text\":\"\"}],\"usage\":null}\n\ndata: [DONE]\n\n"
	st = sseState{addUsage: true}
	out := feedAll(&st, noUsage)
	var chunk struct {
		ID, Object, Model string
		Created           int64
		Choices           []any
		Usage             struct {
			CompletionTokens int  `json:"completion_tokens"`
			Estimated        bool `json:"flm_estimated"`
		}
	}
	line := strings.Split(out, "\n\n")[2]
	if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &chunk); err != nil {
		t.Fatalf("synthesised chunk %q: %v", line, err)
	}
	if chunk.ID != "c1" || chunk.Object != "text_completion" || chunk.Model != "m" || chunk.Created != 7 || chunk.Choices == nil ||
		chunk.Usage.CompletionTokens != 1 || !chunk.Usage.Estimated {
		t.Fatalf("synthesised chunk %+v", chunk)
	}
	// A client that declined usage gets none added.
	st = sseState{addUsage: false}
	if out := feedAll(&st, noUsage); out != noUsage {
		t.Fatalf("usage added against the client's wish: %q", out)
	}
}

// Whatever the engine sends and however it is split, FLM relays it byte for
// byte (plus at most one usage event before [DONE]).
func FuzzSSERelay(f *testing.F) {
	f.Add("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: [DONE]\n\n", uint8(3))
	f.Add("data: a\r\n\r\ndata: [DONE]\r\n\r\n", uint8(1))
	f.Add(": comment\n\nevent: x\ndata: 1\ndata: 2\n\n", uint8(7))
	f.Fuzz(func(t *testing.T, stream string, step uint8) {
		n := int(step%16) + 1
		st := sseState{}
		var out []byte
		for i := 0; i < len(stream); i += n {
			out = append(out, st.feed([]byte(stream[i:min(len(stream), i+n)]))...)
		}
		out = append(out, st.finish()...)
		out = append(out, st.pending...)
		if !bytes.Equal(out, []byte(stream)) {
			t.Fatalf("relayed %q, got %q", stream, out)
		}
	})
}
