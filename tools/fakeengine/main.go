// Command fakeengine serves a fake local LLM engine (Ollama, vLLM, LM Studio
// or llama.cpp) that answers from captured real responses; see package
// github.com/unjuno/flm/tools/enginefake.
//
//	go run ./tools/fakeengine --kind ollama [--addr 127.0.0.1:11434]
//	    [--models 'a,b:latest,org/x'] [--embed-models e1] [--ctx 8192]
//	    [--latency 5ms] [--ttft 50ms] [--tps 50] [--fail hang|500|reset|loading|malformed]
//	    [--api-key K] [--version V] [--router]
//
// It logs one line per request to stderr (method, path, status, duration;
// never bodies) and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/unjuno/flm/tools/enginefake"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fakeengine:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	opts, err := parseFlags(args)
	if err != nil {
		return err
	}
	if !opts.Quiet {
		opts.Log = log.New(os.Stderr, "fakeengine: ", log.Ltime|log.Lmicroseconds)
	}
	srv, err := enginefake.Start(opts)
	if err != nil {
		return err
	}
	defer srv.Close()
	log.New(os.Stderr, "fakeengine: ", 0).Printf("%s listening on %s", opts.Kind, srv.URL())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

// parseFlags turns the command line into fake engine options.
func parseFlags(args []string) (enginefake.Options, error) {
	fs := flag.NewFlagSet("fakeengine", flag.ContinueOnError)
	var (
		kind    = fs.String("kind", "", "engine kind: ollama, vllm, lmstudio or llamacpp (required)")
		addr    = fs.String("addr", "", "listen address (default 127.0.0.1:<the kind's default port>)")
		models  = fs.String("models", "", "comma-separated chat model names (default: the captured models)")
		embeds  = fs.String("embed-models", "", "comma-separated embedding model names")
		ctxLen  = fs.Int("ctx", 0, "context length of the given models (0 = the captured one)")
		latency = fs.Duration("latency", 0, "added before the response headers of every request")
		ttft    = fs.Duration("ttft", 0, "streams: delay before the first chunk")
		tps     = fs.Float64("tps", 0, "streams: chunks per second after the first (0 = as fast as possible)")
		fail    = fs.String("fail", "", "failure mode: 500, hang, reset, loading or malformed")
		apiKey  = fs.String("api-key", "", "vllm, lmstudio: require Authorization: Bearer <key>")
		version = fs.String("version", "", "reported engine version (default: the captured one)")
		router  = fs.Bool("router", false, "llamacpp: router mode (several models, loaded on demand)")
		quiet   = fs.Bool("quiet", false, "no per-request log line (benchmarks)")
	)
	if err := fs.Parse(args); err != nil {
		return enginefake.Options{}, err
	}
	if fs.NArg() > 0 {
		return enginefake.Options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	k := enginefake.Kind(*kind)
	if k.DefaultPort() == 0 {
		return enginefake.Options{}, fmt.Errorf("--kind must be one of ollama, vllm, lmstudio, llamacpp (got %q)", *kind)
	}
	if *addr == "" {
		*addr = fmt.Sprintf("127.0.0.1:%d", k.DefaultPort())
	}
	opts := enginefake.Options{
		Kind: k, Addr: *addr, Latency: *latency, TTFT: *ttft, TokensPerSecond: *tps,
		Failure: enginefake.Failure(*fail), APIKey: *apiKey, Version: *version, Router: *router,
		NoRecord: true, // nobody reads them here, and a long run would keep them all
		Quiet:    *quiet,
	}
	if *models != "" || *embeds != "" {
		opts.Models = []enginefake.Model{} // explicit: only these
		for _, n := range splitNames(*models) {
			opts.Models = append(opts.Models, enginefake.Model{Name: n, ContextLength: *ctxLen})
		}
		for _, n := range splitNames(*embeds) {
			opts.Models = append(opts.Models, enginefake.Model{Name: n, Embedding: true, ContextLength: *ctxLen})
		}
	}
	return opts, nil
}

// splitNames splits a comma-separated list; names may contain spaces, '/',
// ':' and any unicode, only not commas.
func splitNames(s string) []string {
	var out []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}
