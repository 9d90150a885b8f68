package enginefake

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// The captures are embedded so that the fake runs without ../shared. They are
// byte-for-byte copies of shared/fixtures/engines (a test keeps them in sync).
//
//go:embed fixtures
var fixturesFS embed.FS

// FixtureFS returns the embedded fixture tree, rooted at the engines directory
// (paths look like "llamacpp/health.http").
func FixtureFS() fs.FS {
	sub, err := fs.Sub(fixturesFS, "fixtures")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// HeaderField is one header line, in the order the engine sent it.
type HeaderField struct {
	Name  string
	Value string
}

// Headers keeps the captured header lines in order (and with their original
// spelling), which http.Header cannot do.
type Headers []HeaderField

// Get returns the first value of the named header (case-insensitive) and
// whether it is present at all (several captured values are empty strings).
func (h Headers) Get(name string) (string, bool) {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value, true
		}
	}
	return "", false
}

// Fixture is one captured exchange: the request that was sent and the raw
// response the engine gave.
type Fixture struct {
	Name     string // path inside the fixture tree, e.g. "ollama/api_tags.http"
	Kind     Kind   // first path element
	Source   string // the "### SOURCE:" line, without the marker
	Request  FixtureRequest
	Response FixtureResponse
}

// FixtureRequest is the request half of a fixture.
type FixtureRequest struct {
	Method string
	Target string // path and query, as on the request line
	Proto  string
	Header Headers
	Body   []byte
}

// Path is the request target without its query.
func (r FixtureRequest) Path() string {
	p, _, _ := strings.Cut(r.Target, "?")
	return p
}

// FixtureResponse is the response half of a fixture. For streams Body is the
// raw SSE / NDJSON byte stream with the chunked framing removed.
type FixtureResponse struct {
	Proto  string
	Status int
	Reason string
	Header Headers
	Body   []byte
}

const (
	markSource   = "### SOURCE: "
	markRequest  = "### REQUEST\n"
	markResponse = "\n### RESPONSE\n"
)

// ParseFixture parses one .http file (format: fixtures/README.md). name is
// only used for Name/Kind and error messages.
func ParseFixture(name string, data []byte) (*Fixture, error) {
	fail := func(format string, a ...any) (*Fixture, error) {
		return nil, fmt.Errorf("fixture %s: %s", name, fmt.Sprintf(format, a...))
	}
	first, rest, ok := bytes.Cut(data, []byte("\n"))
	if !ok || !bytes.HasPrefix(first, []byte(markSource)) {
		return fail("does not start with %q", markSource)
	}
	if !bytes.HasPrefix(rest, []byte(markRequest)) {
		return fail("missing %q", strings.TrimSpace(markRequest))
	}
	rest = rest[len(markRequest):]
	if bytes.Count(rest, []byte(markResponse)) != 1 {
		return fail("want exactly one %q", strings.TrimSpace(markResponse))
	}
	reqPart, respPart, _ := bytes.Cut(rest, []byte(markResponse))

	fx := &Fixture{Name: name, Source: string(first[len(markSource):])}
	if k, _, ok := strings.Cut(name, "/"); ok {
		fx.Kind = Kind(k)
	}

	// Request: the separator line before "### RESPONSE" belongs to the file
	// format, so a request without body has no blank line left in reqPart.
	reqHead, reqBody, _ := bytes.Cut(reqPart, []byte("\n\n"))
	start, hdr, err := parseHead(reqHead)
	if err != nil {
		return fail("request: %v", err)
	}
	parts := strings.SplitN(start, " ", 3)
	if len(parts) != 3 {
		return fail("bad request line %q", start)
	}
	fx.Request = FixtureRequest{Method: parts[0], Target: parts[1], Proto: parts[2], Header: hdr, Body: reqBody}

	// Response: the body runs to the end of the file, byte for byte.
	respHead, respBody, ok := bytes.Cut(respPart, []byte("\n\n"))
	if !ok {
		return fail("response has no blank line after its headers")
	}
	start, hdr, err = parseHead(respHead)
	if err != nil {
		return fail("response: %v", err)
	}
	parts = strings.SplitN(start, " ", 3)
	if len(parts) < 2 {
		return fail("bad status line %q", start)
	}
	code, err := strconv.Atoi(parts[1])
	if err != nil {
		return fail("bad status code in %q", start)
	}
	fx.Response = FixtureResponse{Proto: parts[0], Status: code, Header: hdr, Body: respBody}
	if len(parts) == 3 {
		fx.Response.Reason = parts[2]
	}
	return fx, nil
}

func parseHead(b []byte) (start string, hdr Headers, err error) {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	start = lines[0]
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok || name == "" {
			return "", nil, fmt.Errorf("bad header line %q", l)
		}
		hdr = append(hdr, HeaderField{Name: name, Value: strings.TrimSpace(value)})
	}
	return start, hdr, nil
}

var (
	loadOnce   sync.Once
	loaded     map[string]*Fixture
	loadedList []*Fixture
	loadErr    error
)

func loadAll() {
	loaded = map[string]*Fixture{}
	root := FixtureFS()
	loadErr = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".http" {
			return err
		}
		data, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		fx, err := ParseFixture(p, data)
		if err != nil {
			return err
		}
		loaded[p] = fx
		loadedList = append(loadedList, fx)
		return nil
	})
	sort.Slice(loadedList, func(i, j int) bool { return loadedList[i].Name < loadedList[j].Name })
}

// Fixtures returns every embedded fixture, sorted by name. The values are
// shared: do not modify them.
func Fixtures() ([]*Fixture, error) {
	loadOnce.Do(loadAll)
	return loadedList, loadErr
}

// LoadFixture returns the named embedded fixture ("vllm/health_ok.http").
func LoadFixture(name string) (*Fixture, error) {
	loadOnce.Do(loadAll)
	if loadErr != nil {
		return nil, loadErr
	}
	fx, ok := loaded[name]
	if !ok {
		return nil, fmt.Errorf("no fixture %q", name)
	}
	return fx, nil
}

// mustFixture is for the engines' own lookups: a missing name is a bug that
// the replay test catches.
func mustFixture(name string) *Fixture {
	fx, err := LoadFixture(name)
	if err != nil {
		panic(err)
	}
	return fx
}

// SSEEvent is one event of a captured SSE stream.
type SSEEvent struct {
	// Name is the "event:" line's value; "" where the engine sent none
	// (OpenAI chat and completions streams). Anthropic's /v1/messages and
	// OpenAI's /v1/responses name every event after its data's "type".
	Name string
	Data []byte // the text after "data: "
}

// SSEStream splits a captured SSE body into its events, including a final
// "[DONE]" where the engine sent one. Every captured stream uses one "data:"
// line per event, optionally preceded by one "event:" line, and a blank line
// between events.
func SSEStream(body []byte) ([]SSEEvent, error) {
	var out []SSEEvent
	for _, block := range bytes.Split(body, []byte("\n\n")) {
		if len(block) == 0 {
			continue
		}
		var ev SSEEvent
		if rest, ok := bytes.CutPrefix(block, []byte("event: ")); ok {
			name, data, found := bytes.Cut(rest, []byte("\n"))
			if !found || len(name) == 0 {
				return nil, fmt.Errorf("unexpected SSE block %.60q", block)
			}
			ev.Name, block = string(name), data
		}
		payload, ok := bytes.CutPrefix(block, []byte("data: "))
		if !ok || bytes.Contains(payload, []byte("\n")) {
			return nil, fmt.Errorf("unexpected SSE block %.60q", block)
		}
		ev.Data = payload
		out = append(out, ev)
	}
	return out, nil
}

// SSEEvents is SSEStream without the event names: the data payloads only.
func SSEEvents(body []byte) ([][]byte, error) {
	events, err := SSEStream(body)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(events))
	for i, e := range events {
		out[i] = e.Data
	}
	return out, nil
}

// NDJSONLines splits a captured NDJSON body into its lines.
func NDJSONLines(body []byte) [][]byte {
	var out [][]byte
	for _, l := range bytes.Split(body, []byte("\n")) {
		if len(l) > 0 {
			out = append(out, l)
		}
	}
	return out
}
