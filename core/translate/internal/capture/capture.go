package capture

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// Exchange is one captured HTTP exchange.
type Exchange struct {
	ReqBody  []byte
	Status   int
	RespBody []byte
}

// Dir is testdata/captures of package translate.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "captures")
}

// Load reads captures/<name> ("llamacpp/v1_messages.http").
func Load(name string) (*Exchange, error) {
	raw, err := os.ReadFile(filepath.Join(Dir(), name))
	if err != nil {
		return nil, err
	}
	_, rest, ok := bytes.Cut(raw, []byte("### REQUEST\n"))
	if !ok {
		return nil, fmt.Errorf("%s: no ### REQUEST", name)
	}
	req, resp, ok := bytes.Cut(rest, []byte("### RESPONSE\n"))
	if !ok {
		return nil, fmt.Errorf("%s: no ### RESPONSE", name)
	}
	x := &Exchange{}
	if _, body, ok := bytes.Cut(req, []byte("\n\n")); ok {
		x.ReqBody = bytes.TrimSpace(body)
	}
	head, body, _ := bytes.Cut(resp, []byte("\n\n"))
	status, _, _ := bytes.Cut(head, []byte("\n"))
	f := strings.Fields(string(status))
	if len(f) < 2 {
		return nil, fmt.Errorf("%s: bad status line", name)
	}
	if x.Status, err = strconv.Atoi(f[1]); err != nil {
		return nil, fmt.Errorf("%s: bad status line", name)
	}
	x.RespBody = body
	return x, nil
}

// Event is one SSE event.
type Event struct {
	Name string
	Data []byte
}

// SSE parses an event stream (LF line endings, as captured and as FLM
// writes them). It fails on anything but event:/data: lines and blank
// lines, so sloppy framing in FLM's output is caught.
func SSE(body []byte) ([]Event, error) {
	var out []Event
	var cur Event
	has := false
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if has {
				out = append(out, cur)
			}
			cur, has = Event{}, false
		case strings.HasPrefix(line, "event: "):
			cur.Name, has = strings.TrimPrefix(line, "event: "), true
		case strings.HasPrefix(line, "data: "):
			if cur.Data != nil {
				return nil, fmt.Errorf("event with several data lines: %q", line)
			}
			cur.Data, has = []byte(strings.TrimPrefix(line, "data: ")), true
		default:
			return nil, fmt.Errorf("unexpected SSE line %q", line)
		}
	}
	if has {
		return nil, fmt.Errorf("stream ends inside an event")
	}
	return out, sc.Err()
}

// Payloads are the data of an SSE stream's events.
func Payloads(body []byte) ([][]byte, error) {
	evs, err := SSE(body)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(evs))
	for i, e := range evs {
		out[i] = e.Data
	}
	return out, nil
}

// NDJSON splits newline-delimited JSON; every line must be valid JSON and
// end with a newline.
func NDJSON(body []byte) ([][]byte, error) {
	if len(body) > 0 && body[len(body)-1] != '\n' {
		return nil, fmt.Errorf("NDJSON does not end with a newline")
	}
	var out [][]byte
	for _, l := range bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n")) {
		if !json.Valid(l) {
			return nil, fmt.Errorf("invalid NDJSON line %q", l)
		}
		out = append(out, l)
	}
	return out, nil
}

// Mode says how key sets are compared.
type Mode int

const (
	// Equal: both sides have the same keys.
	Equal Mode = iota
	// Superset: got may have keys want lacks (the capture is of an engine
	// that leaves out fields the official API has).
	Superset
)

// Diff compares the JSON shapes of got and want: key sets (per Mode) and
// value types, recursively (arrays by their first elements). null matches
// any type: nullable fields are null when there is nothing to report. It
// returns the differences, one per line.
func Diff(got, want []byte, mode Mode) []string {
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return []string{"got is not JSON: " + err.Error()}
	}
	if err := json.Unmarshal(want, &w); err != nil {
		return []string{"want is not JSON: " + err.Error()}
	}
	var out []string
	diff("$", g, w, mode, &out)
	return out
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "?"
}

func diff(path string, g, w any, mode Mode, out *[]string) {
	kg, kw := kind(g), kind(w)
	if kg == "null" || kw == "null" {
		return
	}
	if kg != kw {
		*out = append(*out, fmt.Sprintf("%s: got %s, want %s", path, kg, kw))
		return
	}
	switch kg {
	case "object":
		gm, wm := g.(map[string]any), w.(map[string]any)
		keys := make([]string, 0, len(wm))
		for k := range wm {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			gv, ok := gm[k]
			if !ok {
				*out = append(*out, fmt.Sprintf("%s: missing key %q", path, k))
				continue
			}
			diff(path+"."+k, gv, wm[k], mode, out)
		}
		if mode == Equal {
			extra := []string{}
			for k := range gm {
				if _, ok := wm[k]; !ok {
					extra = append(extra, k)
				}
			}
			sort.Strings(extra)
			for _, k := range extra {
				*out = append(*out, fmt.Sprintf("%s: extra key %q", path, k))
			}
		}
	case "array":
		ga, wa := g.([]any), w.([]any)
		if len(ga) > 0 && len(wa) > 0 {
			diff(path+"[0]", ga[0], wa[0], mode, out)
		}
	}
}

// Keys are the sorted top-level keys of a JSON object.
func Keys(obj []byte) []string {
	var m map[string]json.RawMessage
	if json.Unmarshal(obj, &m) != nil {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
