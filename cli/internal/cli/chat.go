package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/proxy/devtls"
)

// ChatCmd is `flm chat`: one chat turn through a running FLM proxy, the way
// any OpenAI client would send it.
//
// A failure names what failed: nothing listening → PROXY_NOT_RUNNING; a
// TLS failure → PROXY_CERT_FAILED; --timeout of silence before or during
// the answer → ENGINE_TIMEOUT; the connection broken or the stream ended
// before [DONE] → ENGINE_NETWORK_ERROR ("the answer was cut"). Ctrl-C or
// SIGTERM is not a failure: a one-line note on stderr, exit status 130.
type ChatCmd struct {
	Model       string   `required:"" help:"Model: flm://engine/model or a bare name one engine serves."`
	Prompt      string   `help:"The user message (default: read from stdin)."`
	System      string   `help:"A system message."`
	Stream      bool     `help:"Print the answer as it is generated."`
	JSON        bool     `name:"json" help:"Print the whole response as JSON (with usage)."`
	Temperature *float64 `help:"Sampling temperature."`
	MaxTokens   int      `name:"max-tokens" help:"Maximum tokens to generate."`
	URL         string   `name:"url" help:"Proxy base URL (default: the first running proxy of this data dir)."`
	CACert      string   `name:"cacert" placeholder:"PEM" help:"Also trust this CA for HTTPS (e.g. a test CA's root); the system roots and FLM's own CAs are trusted anyway."`
	APIKey      string   `name:"api-key" help:"FLM API key (default: $FLM_API_KEY)."`
	// Timeout bounds silence, not the whole answer: a long generation that
	// keeps streaming is never cut.
	Timeout time.Duration `default:"10m" help:"Give up when the proxy sends nothing for this long, before the answer starts or between two parts of it."`
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
	if c.Timeout <= 0 {
		return flmerr.New(flmerr.InvalidArgument, "--timeout must be positive, e.g. 10m or 90s")
	}
	base, client, err := a.chatTarget(c.URL, c.CACert)
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

	// One watchdog for every wait: connecting, the answer's headers, and
	// each gap between two reads of the body. It cancels the request with
	// errChatTimeout as the cause, which tells a time-out apart from an
	// interrupt (the App's context) and from a broken connection.
	ctx, cancel := context.WithCancelCause(a.ctx)
	defer cancel(nil)
	wd := time.AfterFunc(c.Timeout, func() { cancel(errChatTimeout) })
	defer wd.Stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(b))
	if err != nil {
		return flmerr.Wrap(err, flmerr.InvalidArgument, "proxy URL")
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return c.failure(a, ctx, base, err, false, false)
	}
	defer resp.Body.Close()
	wd.Reset(c.Timeout)
	res := chatResult{Model: c.Model, RequestID: resp.Header.Get("X-Request-Id")}
	if resp.StatusCode != http.StatusOK {
		return proxyError(resp)
	}
	body := &watchedBody{r: resp.Body, wd: wd, d: c.Timeout}
	printed := false
	if c.Stream {
		printed, err = c.readStream(a, body, &res)
	} else {
		err = readWhole(body, &res)
	}
	if err != nil {
		if body.err != nil || ctx.Err() != nil {
			// The connection, not the content, failed.
			cause := body.err
			if cause == nil {
				cause = err
			}
			return c.failure(a, ctx, base, cause, true, printed)
		}
		if printed {
			// End the partial answer's line before the error.
			fmt.Fprintln(a.Stdout)
		}
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

// errChatTimeout is the cause of a request cancelled by the watchdog.
var errChatTimeout = errors.New("flm chat: time-out")

// exitInterrupted is the status of a chat stopped by Ctrl-C or SIGTERM:
// 128 + SIGINT, as shells report a process an interrupt ended.
const exitInterrupted = 130

// failure explains a transport error: err happened before any answer came
// (midAnswer false) or while reading it. An interrupt is not a failure of
// FLM's: it gets a one-line note on stderr and exit status 130, without an
// error code that would blame the proxy or the engine.
func (c ChatCmd) failure(a *App, ctx context.Context, base string, err error, midAnswer, printed bool) error {
	if printed {
		// End the partial answer's line before the explanation.
		fmt.Fprintln(a.Stdout)
	}
	if a.ctx.Err() != nil {
		if midAnswer {
			fmt.Fprintln(a.Stderr, "flm chat: interrupted; the answer is incomplete")
		} else {
			fmt.Fprintln(a.Stderr, "flm chat: interrupted before the proxy answered")
		}
		return reported(exitInterrupted)
	}
	incomplete := "the answer is incomplete"
	if printed {
		incomplete = "the answer above is incomplete"
	}
	fail := func(code flmerr.Code, format string, args ...any) error {
		return &flmerr.Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
	}
	if errors.Is(context.Cause(ctx), errChatTimeout) {
		if midAnswer {
			return fail(flmerr.EngineTimeout, "the answer stopped: the proxy at %s sent nothing for %s; %s (a slow engine may need a longer --timeout)", base, c.Timeout, incomplete)
		}
		return fail(flmerr.EngineTimeout, "no answer from the proxy at %s within %s (the engine may still be loading the model; a slow engine may need a longer --timeout)", base, c.Timeout)
	}
	if midAnswer {
		return fail(flmerr.EngineNetworkError, "the answer was cut: the connection to the proxy at %s broke in the middle of it (%s); %s", base, cleanErr(err), incomplete)
	}
	if msg, ok := tlsFailure(err); ok {
		return fail(flmerr.ProxyCertFailed, "TLS with the proxy at %s failed: %s", base, msg)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fail(flmerr.ProxyNotRunning, "no FLM proxy answers at %s (start one with `flm proxy start`): %s", base, cleanErr(err))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fail(flmerr.EngineTimeout, "no answer from the proxy at %s: %s", base, cleanErr(err))
	}
	return fail(flmerr.EngineNetworkError, "the proxy at %s closed the connection without answering (%s)", base, cleanErr(err))
}

// tlsFailure recognises an error of the TLS layer and says what went wrong
// in the user's terms.
func tlsFailure(err error) (string, bool) {
	var (
		unknown  x509.UnknownAuthorityError
		host     x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		alert    tls.AlertError
		verifErr *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknown):
		return "its certificate is not signed by a CA this machine trusts, nor by the dev CA of this data dir (certs/ca.pem); a dev-selfsigned proxy of another data dir needs --data-dir", true
	case errors.As(err, &host):
		return "its certificate does not name this host: " + host.Error(), true
	case errors.As(err, &invalid):
		return "its certificate is not valid: " + invalid.Error(), true
	case errors.As(err, &record), errors.Is(err, http.ErrSchemeMismatch):
		// net/http turns a RecordHeaderError whose record looks like
		// HTTP into ErrSchemeMismatch.
		return "the server does not speak TLS (try http:// instead of https://)", true
	case errors.As(err, &verifErr):
		return "its certificate does not verify: " + verifErr.Err.Error(), true
	case errors.As(err, &alert):
		return "the server refused the TLS handshake: " + alert.Error(), true
	}
	return "", false
}

// watchedBody re-arms the watchdog after every read that brought data,
// and keeps the first read error so that a broken connection is told apart
// from content that does not decode.
type watchedBody struct {
	r   io.Reader
	wd  *time.Timer
	d   time.Duration
	err error
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.wd.Reset(b.d)
	}
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// chatTarget picks the proxy: --url, else the first running proxy. The
// client has no overall time limit (the caller's watchdog bounds silence
// instead, so a long answer that keeps coming is never cut); connecting
// gets 10 s, after which nothing answering is what it is.
func (a *App) chatTarget(url, cacert string) (string, *http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	// HTTP/1.1, as before: one chat is one request, and a connection cut
	// mid-answer then reads as an unexpected EOF, not an HTTP/2 stream
	// error.
	tr.ForceAttemptHTTP2 = false
	client := &http.Client{Transport: tr}
	hs, err := a.liveHandles()
	if err != nil && url == "" {
		return "", nil, err
	}
	var h *proxyctl.Handle
	if url == "" {
		// Never guess a port: 8080 may well be llama-server, and the key
		// must only ever go to an FLM proxy.
		if len(hs) == 0 {
			return "", nil, flmerr.New(flmerr.ProxyNotRunning, "no FLM proxy is running for this data dir; start one with `flm proxy start`, or pass --url")
		}
		h, url = &hs[0], hs[0].URLs.Local
	}
	url = strings.TrimRight(url, "/")
	url = strings.TrimSuffix(url, "/v1")
	for i := range hs {
		if h == nil && strings.TrimRight(hs[i].URLs.Local, "/") == url {
			h = &hs[i]
		}
	}
	if strings.HasPrefix(url, "https://") {
		tc, err := a.chatTLS(h, cacert)
		if err != nil {
			return "", nil, err
		}
		tr.TLSClientConfig = tc
	}
	return url, client, nil
}

// chatTLS trusts the system roots, FLM's own CAs in certs/ (the dev CA and
// the packaged-ca root, which a user may not have installed) and cacert.
// An https-acme proxy reached at its loopback URL presents a certificate
// for its domain: the name checked is the domain (h, when the URL is a
// running proxy's).
func (a *App) chatTLS(h *proxyctl.Handle, cacert string) (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if dir, err := a.DataDir(); err == nil {
		for _, f := range []string{devtls.FilesIn(filepath.Join(dir, "certs")).CACert, filepath.Join(dir, "certs", LocalCARootFile)} {
			if pem, err := os.ReadFile(f); err == nil {
				pool.AppendCertsFromPEM(pem)
			}
		}
	}
	if cacert != "" {
		pem, err := os.ReadFile(cacert)
		if err != nil {
			return nil, flmerr.Wrap(err, flmerr.InvalidArgument, "read --cacert")
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, flmerr.New(flmerr.InvalidArgument, "--cacert %s holds no PEM certificate", cacert)
		}
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if h != nil && h.Mode == proxyctl.HTTPSACME {
		if u, err := neturl.Parse(h.URLs.External); err == nil && u.Hostname() != "" {
			tc.ServerName = u.Hostname()
		}
	}
	return tc, nil
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
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return flmerr.ProxyAnswer(resp.StatusCode, b)
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
// collects the whole answer. printed tells whether part of the answer is
// already on stdout. A read error is returned as it is, for the caller to
// explain; an answer that ends without [DONE] was cut.
func (c ChatCmd) readStream(a *App, body io.Reader, res *chatResult) (printed bool, err error) {
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
			return printed, nil
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
			return printed, flmerr.New(flmerr.EngineNetworkError, "the stream broke: %s", ch.Error.Message)
		}
		if len(ch.Usage) > 0 && string(ch.Usage) != "null" {
			res.Usage = ch.Usage
		}
		for _, choice := range ch.Choices {
			text.WriteString(choice.Delta.Content)
			if !c.JSON && choice.Delta.Content != "" {
				fmt.Fprint(a.Stdout, choice.Delta.Content)
				printed = true
			}
			if choice.FinishReason != nil {
				res.FinishReason = *choice.FinishReason
			}
		}
	}
	if err := sc.Err(); err != nil {
		return printed, err
	}
	incomplete := "the answer is incomplete"
	if printed {
		incomplete = "the answer above is incomplete"
	}
	return printed, flmerr.New(flmerr.EngineNetworkError, "the answer was cut: the stream ended before [DONE]; %s", incomplete)
}
