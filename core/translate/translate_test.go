package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/unjuno/flm/core/flmerr"
)

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `"quoted" \ back`, "tab\tnl\ncr\r\x00\x1f\x7f", "é ü 日本 🙂", "\u2028\u2029", "bad \xff\xfe utf8", "<html>&amp;"} {
		got := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q → %s: %v", s, got, err)
		}
		var want string
		std, _ := json.Marshal(s)
		_ = json.Unmarshal(std, &want)
		if back != want {
			t.Errorf("%q round-trips to %q", s, back)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\xff", "\u2028", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendString([]byte("x"), s)[1:]
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q → %s: %v", s, got, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("%q round-trips to %q", s, back)
		}
	})
}

func TestContentMarshal(t *testing.T) {
	for _, c := range []struct {
		c    Content
		want string
	}{
		{Content{Text: "hi"}, `"hi"`},
		{Content{}, `""`},
		{Content{Null: true}, `null`},
		{Content{Parts: []Part{TextPart("a"), ImagePart("https://x/a.png")}}, `[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"https://x/a.png"}}]`},
	} {
		got, err := Marshal(ChatMessage{Role: "user", Content: c.c})
		if err != nil || string(got) != `{"role":"user","content":`+c.want+`}` {
			t.Errorf("%+v: %s %v", c.c, got, err)
		}
	}
	if got := string(ToolChoiceFunction(`we"ird`)); got != `{"type":"function","function":{"name":"we\"ird"}}` {
		t.Errorf("tool choice %s", got)
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	var v struct {
		Model    string `json:"model"`
		Messages []struct {
			Role string `json:"role"`
		} `json:"messages"`
		Max *int64 `json:"max_tokens"`
	}
	for _, c := range []struct{ body, param, msg string }{
		{``, "", "empty"},
		{`   `, "", "empty"},
		{"{\"model\":\"\xff\"}", "", "UTF-8"},
		{`[1,2]`, "", "JSON object"},
		{`"x"`, "", "JSON object"},
		{`{"model":`, "", "not valid JSON"},
		{`{"model":1}`, "model", `"model" must be a string, not number`},
		{`{"max_tokens":"5"}`, "max_tokens", "integer"},
		{`{"max_tokens":1.5}`, "max_tokens", "integer"},
		{`{"messages":{}}`, "messages", "an array"},
		{`{"messages":[{"role":5}]}`, "messages.role", "a string"},
	} {
		err := DecodeRequest([]byte(c.body), &v)
		var te *Error
		if !errors.As(err, &te) || te.Status != 400 || te.Param != c.param || !strings.Contains(te.Message, c.msg) {
			t.Errorf("%q: %#v", c.body, err)
		}
		if !flmerr.Is(err, flmerr.InvalidArgument) {
			t.Errorf("%q: flmerr code %s", c.body, flmerr.CodeOf(err))
		}
	}
	if !flmerr.Is(EngineError("x"), flmerr.EngineAPIError) {
		t.Error("engine errors carry ENGINE_API_ERROR")
	}
	if q := Quote(strings.Repeat("a", 100) + "\xff"); len(q) > 90 || !utf8.ValidString(q) {
		t.Errorf("quote %q", q)
	}
}

func collect(t testing.TB, d *SSEDecoder, chunks ...string) []string {
	t.Helper()
	var out []string
	for _, c := range chunks {
		if err := d.Feed([]byte(c), func(b []byte) error { out = append(out, string(b)); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestSSEDecoder(t *testing.T) {
	stream := "data: {\"a\":1}\n\n: comment\nevent: x\nid: 3\ndata: two\ndata:lines\n\ndata: [DONE]\n\n"
	want := []string{`{"a":1}`, "two\nlines", "[DONE]"}
	for _, s := range []string{stream, strings.ReplaceAll(stream, "\n", "\r\n"), strings.ReplaceAll(stream, "\n", "\r")} {
		// Every split point: events cut anywhere (a CRLF cut in two
		// included) decode the same.
		for i := 0; i <= len(s); i++ {
			var d SSEDecoder
			got := collect(t, &d, s[:i], s[i:])
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("split at %d of %q: %q", i, s, got)
			}
		}
	}
	var d SSEDecoder
	if got := collect(t, &d, "data: no end"); len(got) != 0 {
		t.Errorf("an unterminated event was delivered: %q", got)
	}
	stop := errors.New("stop")
	d = SSEDecoder{}
	if err := d.Feed([]byte("data: a\n\ndata: b\n\n"), func([]byte) error { return stop }); err != stop {
		t.Errorf("callback error not returned: %v", err)
	}
	d = SSEDecoder{}
	if err := d.Feed(bytes.Repeat([]byte("x"), MaxEvent+1), func([]byte) error { return nil }); !errors.Is(err, ErrEventTooLong) {
		t.Errorf("an endless line: %v", err)
	}
}

func FuzzSSEDecoder(f *testing.F) {
	f.Add([]byte("data: {\"a\":1}\r\n\r\ndata: [DONE]\n\n"), uint16(5))
	f.Add([]byte("data:x\rdata:y\r\r"), uint16(1))
	f.Fuzz(func(t *testing.T, b []byte, cut uint16) {
		whole := decodeAll(t, b, len(b))
		split := decodeAll(t, b, int(cut)%(len(b)+1))
		if strings.Join(whole, "\x00") != strings.Join(split, "\x00") {
			t.Fatalf("split changes the events: %q vs %q", whole, split)
		}
	})
}

func decodeAll(t *testing.T, b []byte, cut int) []string {
	var d SSEDecoder
	var out []string
	fn := func(p []byte) error { out = append(out, string(p)); return nil }
	if err := d.Feed(b[:cut], fn); err != nil {
		return []string{"error"}
	}
	if err := d.Feed(b[cut:], fn); err != nil {
		return []string{"error"}
	}
	return out
}

func TestChunkDecodeResetsReusedChunk(t *testing.T) {
	var c Chunk
	if err := DecodeChunk([]byte(`{"choices":[{"index":0,"delta":{"content":"a","tool_calls":[{"index":0,"id":"x"}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":1}}`), &c); err != nil {
		t.Fatal(err)
	}
	if err := DecodeChunk([]byte(`{"choices":[{"index":0,"delta":{}}]}`), &c); err != nil {
		t.Fatal(err)
	}
	ch := c.First()
	if ch == nil || ch.Delta.Content != nil || ch.FinishReason != nil || ch.Delta.ToolCalls != nil || c.Usage != nil {
		t.Fatalf("fields of the previous chunk survived: %+v", c)
	}
	if err := DecodeChunk([]byte(`{"choices":[{"index":1,"delta":{"content":"b"}}]}`), &c); err != nil || c.First() != nil {
		t.Fatalf("only choice 0 is read: %+v", c)
	}
	if DecodeChunk([]byte(`{"choices":`), &c) == nil {
		t.Fatal("a truncated chunk decoded")
	}
	if !IsDone([]byte(" [DONE]\n")) || IsDone([]byte(`"[DONE]"`)) {
		t.Error("IsDone")
	}
	if s, ok := StopString([]byte(`"END"`)); !ok || s != "END" {
		t.Error("stop string")
	}
	if _, ok := StopString([]byte(`151645`)); ok {
		t.Error("a stop token is not a stop sequence")
	}
	if got := ErrorMessage([]byte(`"plain"`)); got != "plain" {
		t.Errorf("string error: %s", got)
	}
	if got := ErrorMessage([]byte(`{"message":"` + strings.Repeat("x", 600) + `"}`)); len(got) > 510 {
		t.Errorf("not clipped: %d", len(got))
	}
	if RealUsage(&Usage{FLMEstimated: true}) != nil {
		t.Error("FLM's estimate is not the engine's usage")
	}
}
