package cli

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/proxy/devtls"
)

// ChatCmd is `flm chat`: one chat turn through a running FLM proxy, the way
// any OpenAI client would send it.
type ChatCmd struct {
	Model       string   `required:"" help:"Model: flm://engine/model or a bare name one engine serves."`
	Prompt      string   `help:"The user message (default: read from stdin)."`
	System      string   `help:"A system message."`
	Stream      bool     `help:"Print the answer as it is generated."`
	JSON        bool     `name:"json" help:"Print the whole response as JSON (with usage)."`
	Temperature *float64 `help:"Sampling temperature."`
	MaxTokens   int      `name:"max-tokens" help:"Maximum tokens to generate."`
	URL         string   `name:"url" help:"Proxy base URL (default: the first running proxy of this data dir)."`
	APIKey      string   `name:"api-key" help:"FLM API key (default: $FLM_API_KEY)."`
}

type chatResult struct {
	Model        string          `json:"model"`
	Text         string          `json:"text"`
	FinishReason string          `json:"finish_reason,omitempty"`
	Usage        json.RawMessage `json:"usage,omitempty"`
	RequestID    string          `json:"request_id"`
}

// Run sends the chat request.
func (c ChatCmd) Run(a *App) error {
	key := c.APIKey
	if key == "" {
		key = a.Getenv("FLM_API_KEY")
	}
	if key == "" {
		return flmerr.New(flmerr.InvalidArgument, "an API key is needed: --api-key or FLM_API_KEY (create one with `flm api-keys create --label cli`)")
	}
	prompt := c.Prompt
	if prompt == "" {
		b, err := io.ReadAll(io.LimitReader(a.Stdin, 10<<20))
		if err != nil {
			return flmerr.Wrap(err, flmerr.IOError, "read the prompt from stdin")
		}
		prompt = strings.TrimRight(string(b), "\n")
	}
	if strings.TrimSpace(prompt) == "" {
		return flmerr.New(flmerr.InvalidArgument, "the prompt is empty: pass --prompt or pipe text on stdin")
	}
	base, client, err := a.chatTarget(c.URL)
	if err != nil {
		return err
	}
	var msgs []map[string]string
	if c.System != "" {
		msgs = append(msgs, map[string]string{"role": "system", "content": c.System})
	}
	msgs = append(msgs, map[string]string{"role": "user", "content": prompt})
	reqBody := map[string]any{"model": c.Model, "messages": msgs, "stream": c.Stream}
	if c.Temperature != nil {
		reqBody["temperature"] = *c.Temperature
	}
	if c.MaxTokens > 0 {
		reqBody["max_tokens"] = c.MaxTokens
	}
	b, _ := json.Marshal(reqBody)
	req, err := http.NewRequestWithContext(a.ctx, http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(b))
	if err != nil {
		return flmerr.Wrap(err, flmerr.InvalidArgument, "proxy URL")
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return flmerr.New(flmerr.ProxyNotRunning, "no FLM proxy answers at %s (start one with `flm proxy start`): %v", base, cleanErr(err))
	}
	defer resp.Body.Close()
	res := chatResult{Model: c.Model, RequestID: resp.Header.Get("X-Request-Id")}
	if resp.StatusCode != http.StatusOK {
		return proxyError(resp)
	}
	if c.Stream {
		err = c.readStream(a, resp.Body, &res)
	} else {
		err = readWhole(resp.Body, &res)
	}
	if err != nil {
		return err
	}
	if c.JSON {
		return a.print(res, nil)
	}
	if !c.Stream {
		fmt.Fprint(a.Stdout, res.Text)
	}
	fmt.Fprintln(a.Stdout)
	return nil
}

// chatTarget picks the proxy: --url, else the first running proxy.
func (a *App) chatTarget(url string) (string, *http.Client, error) {
	client := &http.Client{Timeout: 10 * time.Minute}
	if url == "" {
		// Never guess a port: 8080 may well be llama-server, and the key
		// must only ever go to an FLM proxy.
		hs, err := a.liveHandles()
		if err != nil {
			return "", nil, err
		}
		if len(hs) == 0 {
			return "", nil, flmerr.New(flmerr.ProxyNotRunning, "no FLM proxy is running for this data dir; start one with `flm proxy start`, or pass --url")
		}
		url = hs[0].URLs.Local
	}
	url = strings.TrimRight(url, "/")
	url = strings.TrimSuffix(url, "/v1")
	if strings.HasPrefix(url, "https://") {
		if dir, err := a.DataDir(); err == nil {
			if pool, err := devtls.CAPool(devtls.FilesIn(filepath.Join(dir, "certs"))); err == nil {
				client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
			}
		}
	}
	return url, client, nil
}

func cleanErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// proxyError turns the proxy's error envelope into a CLI error.
func proxyError(resp *http.Response) error {
	var env struct {
		Error struct {
			Message string `json:"message"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = json.Unmarshal(b, &env)
	msg := env.Error.Message
	if msg == "" {
		msg = strings.TrimSpace(string(b))
	}
	code := flmerr.EngineAPIError
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		code = flmerr.APIKeyNotFound
	case resp.StatusCode == http.StatusNotFound:
		code = flmerr.EngineNotFound
	case resp.StatusCode == http.StatusBadRequest:
		code = flmerr.InvalidArgument
	case resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable:
		code = flmerr.EngineNetworkError
	}
	return flmerr.New(code, "proxy answered %d (%s): %s", resp.StatusCode, env.Error.Code, msg)
}

func readWhole(body io.Reader, res *chatResult) error {
	var r struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage json.RawMessage `json:"usage"`
	}
	if err := json.NewDecoder(io.LimitReader(body, 64<<20)).Decode(&r); err != nil {
		return flmerr.Wrap(err, flmerr.EngineAPIError, "decode the response")
	}
	if len(r.Choices) > 0 {
		res.Text = r.Choices[0].Message.Content
		res.FinishReason = r.Choices[0].FinishReason
	}
	res.Usage = r.Usage
	return nil
}

// readStream prints content deltas as they arrive (unless --json) and
// collects the whole answer.
func (c ChatCmd) readStream(a *App, body io.Reader, res *chatResult) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var text strings.Builder
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			res.Text = text.String()
			return nil
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage json.RawMessage `json:"usage"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal([]byte(data), &ch) != nil {
			continue
		}
		if ch.Error != nil {
			return flmerr.New(flmerr.EngineNetworkError, "the stream broke: %s", ch.Error.Message)
		}
		if len(ch.Usage) > 0 && string(ch.Usage) != "null" {
			res.Usage = ch.Usage
		}
		for _, choice := range ch.Choices {
			text.WriteString(choice.Delta.Content)
			if !c.JSON && choice.Delta.Content != "" {
				fmt.Fprint(a.Stdout, choice.Delta.Content)
			}
			if choice.FinishReason != nil {
				res.FinishReason = *choice.FinishReason
			}
		}
	}
	if err := sc.Err(); err != nil {
		return flmerr.Wrap(err, flmerr.EngineNetworkError, "read the stream")
	}
	return flmerr.New(flmerr.EngineNetworkError, "the stream ended without [DONE]")
}
