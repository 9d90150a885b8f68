package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"
)

// The families scenario asks one chat question in every API family FLM
// serves — OpenAI Chat Completions, Anthropic Messages, OpenAI Responses,
// Ollama's /api/chat — of one vLLM-shaped mock (fastVLLM), through one FLM,
// beside the plain question sent straight to the mock. vLLM answers none of
// the other families itself, so each of them is translated by FLM to Chat
// Completions and back: the difference between a family's row and FLM's
// OpenAI row is what translation costs.

const (
	famEngineID = "fam"
	famModel    = "Qwen/Qwen2.5-1.5B-Instruct" // the vLLM fixture's model
	famPrompt   = `[{"role":"user","content":"Tell me a story about a cat."}]`
)

// famCase is one family's request, whole or streamed, and how to tell its
// answer is that family's and complete.
type famCase struct {
	Target string // "direct", "flm openai", …
	Path   string
	Stream bool
	url    string
	body   []byte
	hdr    http.Header
	// whole: the answer contains this. stream: the line that ends it
	// (SSE), or that a line contains to end it (NDJSON).
	want string
	// stream: a line that contains one of these is an error event.
	fail []string
}

func (l *lab) famCases() []famCase {
	id := "flm://" + famEngineID + "/" + famModel
	auth := l.header(target{Auth: true})
	plain := l.header(target{})
	type fam struct {
		target, base, path string
		hdr                http.Header
		whole, streamed    string // bodies, %q = the model
		wholeWant, endLine string
		fail               []string
	}
	openai := func(name, base, model string, hdr http.Header) fam {
		return fam{name, base, "/v1/chat/completions", hdr,
			`{"model":%q,"messages":` + famPrompt + `,"max_tokens":16}`,
			// Usage asked for on both paths, as FLM's translated
			// streams ask for it upstream: the engine sends as many chunks.
			`{"model":%q,"messages":` + famPrompt + `,"max_tokens":16,"stream":true,"stream_options":{"include_usage":true}}`,
			`"object":"chat.completion"`, "data: [DONE]", []string{`"stream_error"`, `"error":{`}}
	}
	fams := []fam{
		openai("direct", l.famURL, famModel, plain),
		openai("flm openai", l.flmURL, id, auth),
		{"flm messages", l.flmURL, "/v1/messages", auth,
			`{"model":%q,"max_tokens":16,"messages":` + famPrompt + `}`,
			`{"model":%q,"max_tokens":16,"messages":` + famPrompt + `,"stream":true}`,
			`"type":"message"`, "event: message_stop", []string{"event: error"}},
		{"flm responses", l.flmURL, "/v1/responses", auth,
			`{"model":%q,"max_output_tokens":16,"input":"Tell me a story about a cat."}`,
			`{"model":%q,"max_output_tokens":16,"input":"Tell me a story about a cat.","stream":true}`,
			`"object":"response"`, "event: response.completed", []string{"event: error", "event: response.failed", "event: response.incomplete"}},
		{"flm ollama", l.flmURL, "/api/chat", auth,
			`{"model":%q,"messages":` + famPrompt + `,"stream":false,"options":{"num_predict":16}}`,
			`{"model":%q,"messages":` + famPrompt + `,"stream":true,"options":{"num_predict":16}}`,
			`"done":true`, `"done":true`, []string{`"error":`}},
	}
	var cs []famCase
	for _, f := range fams {
		model := id
		if f.target == "direct" {
			model = famModel
		}
		cs = append(cs,
			famCase{Target: f.target, Path: f.path, url: f.base + f.path, body: fmt.Appendf(nil, f.whole, model), hdr: f.hdr, want: f.wholeWant},
			famCase{Target: f.target, Path: f.path, Stream: true, url: f.base + f.path, body: fmt.Appendf(nil, f.streamed, model), hdr: f.hdr, want: f.endLine, fail: f.fail})
	}
	return cs
}

// famSample is one request's timings: to the first event (streams) and
// to the end of the answer.
type famSample struct {
	first, total time.Duration
	events       int
}

// do sends one request and checks its answer.
func (c famCase) do(ctx context.Context, client *http.Client) (famSample, error) {
	req, _ := http.NewRequestWithContext(ctx, "POST", c.url, bytes.NewReader(c.body))
	req.Header = c.hdr.Clone()
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return famSample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return famSample{}, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	if !c.Stream {
		b, err := io.ReadAll(resp.Body)
		s := famSample{total: time.Since(start), events: 1}
		if err == nil && !bytes.Contains(b, []byte(c.want)) {
			err = fmt.Errorf("answer without %s: %.200s", c.want, b)
		}
		return s, err
	}
	var s famSample
	ndjson := c.Path == "/api/chat"
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if line = bytes.TrimRight(line, "\r\n"); len(line) > 0 {
			if s.first == 0 {
				s.first = time.Since(start)
			}
			// An SSE event counts once, by its data line; NDJSON lines
			// are events themselves.
			if ndjson || bytes.HasPrefix(line, []byte("data:")) {
				s.events++
			}
			for _, f := range c.fail {
				if bytes.Contains(line, []byte(f)) {
					return s, fmt.Errorf("error event: %.200s", line)
				}
			}
			if string(line) == c.want || ndjson && bytes.Contains(line, []byte(c.want)) {
				s.total = time.Since(start)
				_, _ = io.Copy(io.Discard, br) // for the connection's reuse
				return s, nil
			}
		}
		switch {
		case err == io.EOF:
			return s, errors.New("stream ended before its last event")
		case err != nil:
			return s, err
		}
	}
}

// FamiliesResult holds the families scenario.
type FamiliesResult struct {
	Engine  string      `json:"engine"`
	Rounds  int         `json:"rounds"`
	Rows    []FamilyRow `json:"rows"`
	Checked string      `json:"checked"`
}

// FamilyRow is one target and mode over all rounds; added figures are
// against the direct row of the same mode.
type FamilyRow struct {
	Target       string   `json:"target"`
	Path         string   `json:"path"`
	Stream       bool     `json:"stream"`
	Samples      int      `json:"samples"`
	Errors       int      `json:"errors"`
	Latency      Latency  `json:"latency_ms"` // to the end of the answer
	AddedP50     float64  `json:"added_p50_ms"`
	AddedP99     float64  `json:"added_p99_ms"`
	OverOpenAI   float64  `json:"over_flm_openai_p50_ms"` // translation's cost at p50
	First        *Latency `json:"first_event_ms,omitempty"`
	AddedFirst50 float64  `json:"added_first_event_p50_ms,omitempty"`
	AddedFirst99 float64  `json:"added_first_event_p99_ms,omitempty"`
	Events       float64  `json:"events_per_answer,omitempty"`
}

// families runs the scenario: sequential requests, one of every case per
// round, the order rotated each round so that no case always follows the
// same one (a GC or a flush left by the previous request lands on all).
func families(l *lab, short bool) *FamiliesResult {
	rounds, warm := 10000, 100
	if short {
		rounds, warm = 2000, 50
	}
	res := &FamiliesResult{Engine: "vllm (fastVLLM: captured answers, streams unpaced)", Rounds: rounds}
	if err := l.addFamiliesEngine(); err != nil {
		l.notes = append(l.notes, "families: "+err.Error())
		return res
	}
	cases := l.famCases()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}, Timeout: 10 * time.Second}
	ctx := context.Background()
	// Every case must answer in its family before anything is timed: a
	// passthrough to the mock would be a 404, a wrong shape an error.
	for _, c := range cases {
		if _, err := c.do(ctx, client); err != nil {
			l.notes = append(l.notes, fmt.Sprintf("families: %s %s (stream=%v) fails, scenario skipped: %v", c.Target, c.Path, c.Stream, err))
			return res
		}
	}
	res.Checked = "every case answered 200 in its own family's shape before timing; the mock has no /v1/messages or /v1/responses, so these were translated"
	samples := make([][]famSample, len(cases))
	errs := make([]int, len(cases))
	firstErr := make([]string, len(cases))
	logf("families: %d rounds of %d requests (+%d warm-up), interleaved", rounds, len(cases), warm)
	for r := range warm + rounds {
		for j := range cases {
			i := (j + r) % len(cases)
			s, err := cases[i].do(ctx, client)
			if r < warm {
				continue
			}
			if err != nil {
				errs[i]++
				if firstErr[i] == "" {
					firstErr[i] = err.Error()
				}
				continue
			}
			samples[i] = append(samples[i], s)
		}
	}
	rows := make([]FamilyRow, len(cases))
	totals := make([]Latency, len(cases))
	firsts := make([]Latency, len(cases))
	for i, c := range cases {
		var tot, first []time.Duration
		events := 0
		for _, s := range samples[i] {
			tot, first = append(tot, s.total), append(first, s.first)
			events += s.events
		}
		totals[i], firsts[i] = summarize(tot), summarize(first)
		rows[i] = FamilyRow{Target: c.Target, Path: c.Path, Stream: c.Stream, Samples: len(tot), Errors: errs[i], Latency: totals[i]}
		if c.Stream {
			rows[i].First = &firsts[i]
			rows[i].Events = math.Round(float64(events)/float64(max(1, len(tot)))*10) / 10
		}
		if firstErr[i] != "" {
			l.notes = append(l.notes, fmt.Sprintf("families: %d errors for %s %s (stream=%v), first: %s", errs[i], c.Target, c.Path, c.Stream, firstErr[i]))
		}
	}
	find := func(target string, stream bool) int {
		for i, c := range cases {
			if c.Target == target && c.Stream == stream {
				return i
			}
		}
		panic("families: no case " + target)
	}
	for i := range rows {
		d, o := find("direct", rows[i].Stream), find("flm openai", rows[i].Stream)
		rows[i].AddedP50 = round3(totals[i].P50 - totals[d].P50)
		rows[i].AddedP99 = round3(totals[i].P99 - totals[d].P99)
		if rows[i].Target != "direct" {
			rows[i].OverOpenAI = round3(totals[i].P50 - totals[o].P50)
		}
		if rows[i].Stream {
			rows[i].AddedFirst50 = round3(firsts[i].P50 - firsts[d].P50)
			rows[i].AddedFirst99 = round3(firsts[i].P99 - firsts[d].P99)
		}
	}
	res.Rows = rows
	return res
}

// addFamiliesEngine starts the vLLM-shaped mock and adds it to the running
// FLM (engines add reloads running proxies), then waits for its model to
// be served.
func (l *lab) addFamiliesEngine() error {
	port := freePort()
	l.famURL = fmt.Sprintf("http://%s", hostport(port))
	if err := l.start("vllm-mock", l.self, "--role", "vllm-mock", "--listen", hostport(port)); err != nil {
		return err
	}
	if err := waitHTTP(l.famURL+"/version", 10*time.Second); err != nil {
		return err
	}
	if _, err := l.flm("engines", "add", "--kind", "vllm", "--url", l.famURL, "--id", famEngineID); err != nil {
		return err
	}
	want := `"flm://` + famEngineID + "/" + famModel + `"`
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", l.flmURL+"/v1/models", nil)
		req.Header = l.header(target{Auth: true})
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), want) {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("FLM does not serve %s 15 s after engines add", want)
}
