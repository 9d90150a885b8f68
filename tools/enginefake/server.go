package enginefake

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// Kind names an engine.
type Kind string

// The engine kinds.
const (
	Ollama   Kind = "ollama"
	VLLM     Kind = "vllm"
	LMStudio Kind = "lmstudio"
	LlamaCpp Kind = "llamacpp"
)

// Kinds lists every kind.
var Kinds = []Kind{Ollama, VLLM, LMStudio, LlamaCpp}

// DefaultPort is each engine's default port.
func (k Kind) DefaultPort() int {
	switch k {
	case Ollama:
		return 11434
	case LMStudio:
		return 1234
	case VLLM:
		return 8000
	case LlamaCpp:
		return 8080
	}
	return 0
}

// Model is a model the fake serves. Its JSON everywhere is a clone of a
// captured model of the same sort (chat or embedding) with only the name,
// context length and chat-vs-embedding fields replaced.
//
// Per kind: Ollama completes a name without tag with ":latest" (as it lists
// it) and echoes names as the client wrote them; llama.cpp (single-model)
// serves Models[0] under its name (as with --alias) and any Embedding model
// turns --embeddings on (with --metrics, as in the only such capture); vLLM
// serves them as served model names, the first being the default; LM Studio
// lists them all as loaded.
type Model struct {
	Name          string
	Embedding     bool
	ContextLength int // 0 = the captured value
	// Root (vLLM): what the model was loaded from, a Hugging Face id or a
	// path ("" = Name, as without --served-model-name).
	Root string
	// Parent (vLLM): set for a LoRA adapter (--lora-modules), the served
	// name of its base model; adapters list max_model_len null.
	Parent string
}

// Failure is an injected failure mode.
type Failure string

// The failure modes.
const (
	FailNone Failure = ""
	// Fail500: status 500 with the engine's captured error envelope.
	Fail500 Failure = "500"
	// FailHang: accept, never answer until the client goes away or Close.
	FailHang Failure = "hang"
	// FailReset: streams send a few chunks then reset the TCP connection;
	// other requests are reset before any answer.
	FailReset Failure = "reset"
	// FailLoading: the engine's real "model not ready" behaviour. llama.cpp:
	// the captured 503 "Loading model" (Connection: close) on every endpoint;
	// vLLM: /health 503 with empty body (it does not listen before it is up,
	// and a dead engine answers so), here on every endpoint; Ollama: requests
	// that need a model wait (up to 60 s, or until the failure is cleared),
	// like a cold load; LM Studio: the captured "No models loaded" error on
	// the inference endpoints.
	FailLoading Failure = "loading"
	// FailMalformed: 200 with a truncated JSON body (streams: a truncated
	// first event, then the stream ends).
	FailMalformed Failure = "malformed"
)

// Failures lists every failure mode but FailNone.
var Failures = []Failure{Fail500, FailHang, FailReset, FailLoading, FailMalformed}

// Options configure a fake engine.
type Options struct {
	Kind            Kind
	Addr            string        // "" = 127.0.0.1:0
	Models          []Model       // nil = the captured models of that kind; empty = no models
	Latency         time.Duration // added before the response headers of every request
	TTFT            time.Duration // streams: before the first chunk
	TokensPerSecond float64       // streams: pacing of later chunks (0 = as fast as possible)
	Failure         Failure
	// APIKey (vLLM, LM Studio): when set, require "Authorization: Bearer <key>"
	// and answer like the engine does otherwise.
	APIKey string
	// Version: "" = the captured version. Ollama /api/version, vLLM /version
	// (before "0.10" errors use the legacy flat envelope), llama.cpp
	// build_info and system_fingerprint (e.g. "b10470-34af94cd9").
	Version string
	// Router (llama.cpp only): llama-server's router mode (--models-dir),
	// several models loaded on demand, answering like router_mode/ captures.
	Router bool
	// Log, if set, gets one line per request: method, path, status, duration.
	// Request bodies are never logged.
	Log *log.Logger
	// NoRecord keeps Requests empty: long-running fakes (the command, the
	// benchmarks) would otherwise hold every request in memory.
	NoRecord bool
	// Quiet is read by the fakeengine command only: no per-request log.
	Quiet bool
}

// Request is a request the fake received.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
}

// engine is one kind's request handling.
type engine interface {
	serve(c *call)
	fail500(c *call)
}

// Server is a running fake engine.
type Server struct {
	opts Options
	eng  engine
	ln   net.Listener
	hs   *http.Server
	url  string

	mu        sync.Mutex
	failure   Failure
	latency   time.Duration
	failCh    chan struct{} // closed (and replaced) whenever the failure changes
	requests  []Request
	canceled  int
	conns     int
	hijacked  map[net.Conn]struct{}
	inflight  int
	idle      *sync.Cond
	isClosed  bool
	closed    chan struct{}
	closeOnce sync.Once
}

func newServer(opts Options) (*Server, error) {
	s := &Server{
		opts:     opts,
		failure:  opts.Failure,
		latency:  opts.Latency,
		failCh:   make(chan struct{}),
		hijacked: map[net.Conn]struct{}{},
		closed:   make(chan struct{}),
	}
	s.idle = sync.NewCond(&s.mu)
	if _, err := Fixtures(); err != nil {
		return nil, err
	}
	if err := validFailure(opts.Failure); err != nil {
		return nil, err
	}
	if opts.Router && opts.Kind != LlamaCpp {
		return nil, fmt.Errorf("enginefake: Router is a llama.cpp mode, not %q", opts.Kind)
	}
	var err error
	switch opts.Kind {
	case Ollama:
		s.eng = newOllama(opts)
	case LlamaCpp:
		s.eng, err = newLlamaCpp(opts)
	case VLLM:
		s.eng, err = newVLLM(opts)
	case LMStudio:
		s.eng = newLMStudio(opts)
	default:
		return nil, fmt.Errorf("enginefake: unknown kind %q", opts.Kind)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func validFailure(f Failure) error {
	if f == FailNone {
		return nil
	}
	for _, g := range Failures {
		if f == g {
			return nil
		}
	}
	return fmt.Errorf("enginefake: unknown failure %q", f)
}

// Start listens on opts.Addr and serves the fake until Close.
func Start(opts Options) (*Server, error) {
	s, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.ln = &countingListener{Listener: ln, s: s}
	s.url = "http://" + ln.Addr().String()
	s.hs = &http.Server{
		Handler: s,
		// Hijacked connections and resets make net/http log noise that is
		// the point of the exercise, not a problem.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = s.hs.Serve(s.ln) }()
	return s, nil
}

// Handler returns the fake as a plain handler (e.g. for httptest). It panics
// on invalid options. Connection-level habits (llama.cpp closing after
// streams, FailReset) need an HTTP/1 server that supports hijacking.
func Handler(opts Options) http.Handler {
	s, err := newServer(opts)
	if err != nil {
		panic(err)
	}
	return s
}

// URL is the base URL, http://127.0.0.1:port.
func (s *Server) URL() string { return s.url }

// Addr is the listening address, 127.0.0.1:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server: the listener, every connection (hanging requests
// included) and waits (at most a few seconds) for the handlers to return.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.isClosed = true
		for c := range s.hijacked {
			_ = c.Close()
		}
		s.mu.Unlock()
		close(s.closed)
		if s.hs != nil {
			_ = s.hs.Close()
		}
		done := make(chan struct{})
		go func() {
			s.mu.Lock()
			for s.inflight > 0 {
				s.idle.Wait()
			}
			s.mu.Unlock()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	})
}

// SetFailure switches the failure mode at runtime.
func (s *Server) SetFailure(f Failure) {
	if err := validFailure(f); err != nil {
		panic(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failure != f {
		s.failure = f
		close(s.failCh)
		s.failCh = make(chan struct{})
	}
}

// Failure returns the current failure mode.
func (s *Server) Failure() Failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failure
}

// SetLatency changes the latency added before every response's headers.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Requests returns every request received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Canceled counts requests whose client went away before the response was
// complete (mid-stream, while hanging, during the added latency...).
func (s *Server) Canceled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.canceled
}

// Connections counts the TCP connections accepted so far (to observe
// connection reuse and the llama.cpp close-after-stream habit).
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

type countingListener struct {
	net.Listener
	s *Server
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.s.mu.Lock()
		l.s.conns++
		l.s.mu.Unlock()
	}
	return c, err
}

func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isClosed {
		return false
	}
	s.inflight++
	return true
}

func (s *Server) leave() {
	s.mu.Lock()
	s.inflight--
	if s.inflight == 0 {
		s.idle.Broadcast()
	}
	s.mu.Unlock()
}

func (s *Server) addCanceled() {
	s.mu.Lock()
	s.canceled++
	s.mu.Unlock()
}

func (s *Server) trackConn(c net.Conn, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.hijacked[c] = struct{}{}
	} else {
		delete(s.hijacked, c)
	}
}

// ServeHTTP records the request, applies the latency and the failure modes
// that precede any answer, and hands the request to the engine.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		panic(http.ErrAbortHandler)
	}
	defer s.leave()
	start := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	s.mu.Lock()
	if !s.opts.NoRecord {
		s.requests = append(s.requests, Request{
			Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
			Header: r.Header.Clone(), Body: body,
		})
	}
	failure, latency := s.failure, s.latency
	s.mu.Unlock()

	c := &call{s: s, w: w, r: r, body: body, failure: failure}
	defer func() {
		if s.opts.Log != nil {
			s.opts.Log.Printf("%s %s %s %s", r.Method, r.URL.Path, c.statusText(), time.Since(start).Round(time.Microsecond))
		}
	}()
	if !c.sleep(latency) {
		return
	}
	switch failure {
	case FailHang:
		c.hang()
		return
	case Fail500:
		s.eng.fail500(c)
		return
	}
	s.eng.serve(c)
}
