// Package cli is the flm command line: one kong struct per command, the
// composition root that wires core services to the SQLite stores, and the
// output contract of PRODUCT.md §4 (JSON envelope on stdout, error object on
// stderr, exit 1 for user errors and 2 for internal ones).
package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/unjuno/flm/cli/internal/datadir"
	"github.com/unjuno/flm/cli/internal/keychain"
	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/flmerr"
)

// Env is what Main reads from and writes to; tests pass fakes.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// OSEnv is the process's real environment.
func OSEnv() Env {
	return Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

// Globals are the flags every command takes.
type Globals struct {
	Format  string `enum:"json,text" default:"json" help:"Output format: json (default) or text."`
	DataDir string `name:"data-dir" placeholder:"DIR" help:"Data directory (default: $FLM_DATA_DIR, else the OS default)."`
	// KeySource is where security.db's key lives (dbkey.go).
	KeySource string `name:"key-source" placeholder:"SOURCE" help:"Where security.db's key is kept: auto (the OS keychain, else the key file, with a warning), keychain, or file (default: $FLM_DB_KEY_SOURCE, else auto). FLM_DB_KEY=<64 hex digits> gives the key itself."`
}

// CLI is the whole command tree.
type CLI struct {
	Globals

	Version    VersionCmd    `cmd:"" help:"Show the versions of flm and its modules."`
	Engines    EnginesCmd    `cmd:"" help:"Detect and manage LLM engines."`
	Models     ModelsCmd     `cmd:"" help:"List models of every reachable engine."`
	Proxy      ProxyCmd      `cmd:"" help:"Run the secure OpenAI-compatible proxy."`
	Chat       ChatCmd       `cmd:"" help:"Chat with a model through a running proxy."`
	Config     ConfigCmd     `cmd:"" help:"Read and change settings."`
	APIKeys    APIKeysCmd    `cmd:"" name:"api-keys" help:"Manage API keys."`
	Security   SecurityCmd   `cmd:"" help:"Security policy and backups."`
	Check      CheckCmd      `cmd:"" help:"Check the data directory, databases and policy."`
	Migrate    MigrateCmd    `cmd:"" help:"Bring over data from the prototype (flm migrate legacy)."`
	UI         UICmd         `cmd:"" name:"ui" help:"Serve the local web UI on 127.0.0.1 (prints its URL; --open opens it)."`
	Completion CompletionCmd `cmd:"" help:"Print a shell completion script."`
	Service    ServiceCmd    `cmd:"" help:"Install and control the proxy as an OS service (systemd, launchd, Windows)."`
	Man        ManCmd        `cmd:"" hidden:"" help:"Print the man page (roff)."`
}

// App carries what commands need. DBs open lazily: `flm version` touches no
// file.
type App struct {
	Env
	Globals
	ctx     context.Context
	reqID   string
	dataDir string
	dbs     map[store.Kind]*store.DB
	// legacyChecked: DB looked for an interrupted legacy apply once;
	// legacyLockHeld: this process runs an apply (migrations/apply.lock).
	legacyChecked, legacyLockHeld bool
	// lookPath finds executables (nil = exec.LookPath); tests replace it.
	lookPath func(string) (string, error)
	// keychain is the OS keychain (nil = the real one); tests replace it.
	keychain keychain.OS
	// warnings are printed with the command's output (dbkey.go).
	warnings []warning
}

type exitCode int

// reported is returned by a command that already printed its outcome and
// only needs a non-zero exit status (flm check with errors).
type reported int

func (r reported) Error() string { return fmt.Sprintf("exit status %d", int(r)) }

// Main runs flm with args and returns the process exit status.
func Main(args []string, env Env) int { return mainWith(args, env, nil) }

// mainWith is Main with a hook that tests use to replace the App's
// machine-dependent parts.
func mainWith(args []string, env Env, hook func(*App)) (code int) {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := &App{Env: env, ctx: ctx, reqID: newRequestID(), dbs: map[store.Kind]*store.DB{}}
	if hook != nil {
		hook(app)
	}
	defer app.close()

	var c CLI
	parser, err := kong.New(&c,
		kong.Name("flm"),
		kong.Description("FLM: a secure personal gateway for local LLM engines (Ollama, LM Studio, vLLM, llama.cpp)."),
		kong.Writers(env.Stdout, env.Stderr),
		kong.Exit(func(code int) { panic(exitCode(code)) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Bind(app),
	)
	if err != nil {
		return app.fail(flmerr.Wrap(err, flmerr.Internal, "build command line"))
	}
	defer func() {
		if r := recover(); r != nil {
			ec, ok := r.(exitCode)
			if !ok {
				panic(r)
			}
			code = int(ec)
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil {
		app.Format = formatFromArgs(args)
		return app.fail(flmerr.New(flmerr.InvalidArgument, "%s", err.Error()))
	}
	app.Globals = c.Globals
	if err := kctx.Run(app); err != nil {
		var r reported
		if errors.As(err, &r) {
			return int(r)
		}
		return app.fail(err)
	}
	return 0
}

// formatFromArgs recovers --format for errors kong raised before binding.
func formatFromArgs(args []string) string {
	for i, a := range args {
		if a == "--format=text" || a == "--format" && i+1 < len(args) && args[i+1] == "text" {
			return "text"
		}
	}
	return "json"
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "req_" + hex.EncodeToString(b)
}

func (a *App) close() {
	for _, d := range a.dbs {
		_ = d.Close()
	}
}

// fail prints err per the output contract and returns the exit status.
func (a *App) fail(err error) int {
	code := flmerr.CodeOf(err)
	msg := err.Error()
	var fe *flmerr.Error
	if !errors.As(err, &fe) {
		msg = "internal error: " + msg
	}
	if a.Format == "text" {
		a.printWarningsText(a.Stderr)
		fmt.Fprintf(a.Stderr, "error: %s\n  code: %s  request_id: %s\n", msg, code, a.reqID)
	} else {
		out := map[string]any{"error": map[string]string{"code": string(code), "message": msg, "request_id": a.reqID}}
		a.addWarnings(out)
		b, _ := json.Marshal(out)
		fmt.Fprintf(a.Stderr, "%s\n", b)
	}
	if code.UserError() {
		return 1
	}
	return 2
}

// print writes data in the JSON envelope, or through text in text mode.
func (a *App) print(data any, text func(w io.Writer)) error {
	if a.Format == "text" && text != nil {
		text(a.Stdout)
		a.printWarningsText(a.Stdout)
		return nil
	}
	out := map[string]any{"version": "1.0", "data": data}
	a.addWarnings(out)
	b, err := json.Marshal(out)
	if err != nil {
		return flmerr.Wrap(err, flmerr.Internal, "encode output")
	}
	_, err = fmt.Fprintf(a.Stdout, "%s\n", b)
	return err
}

// DataDir resolves and prepares the data dir.
func (a *App) DataDir() (string, error) {
	if a.dataDir != "" {
		return a.dataDir, nil
	}
	dir, err := datadir.Resolve(a.Globals.DataDir, a.Getenv)
	if err != nil {
		return "", err
	}
	if err := datadir.Ensure(dir); err != nil {
		return "", err
	}
	a.dataDir = dir
	return dir, nil
}

// DB opens (once) the database of kind.
func (a *App) DB(kind store.Kind) (*store.DB, error) {
	if d, ok := a.dbs[kind]; ok {
		return d, nil
	}
	dir, err := a.DataDir()
	if err != nil {
		return nil, err
	}
	// Before any command reads the DBs: undo a `flm migrate legacy apply`
	// that a crash interrupted, so nothing ever runs on a half-applied
	// migration (recoverLegacyApply opens the DBs itself).
	if !a.legacyChecked {
		a.legacyChecked = true
		if _, err := os.Stat(filepath.Join(dir, migrationsDir, applyJournal)); err == nil {
			if err := a.recoverLegacyApply(); err != nil {
				return nil, err
			}
			if d, ok := a.dbs[kind]; ok {
				return d, nil
			}
		}
	}
	d, err := store.Open(a.ctx, dir, kind, store.WithKeys(a.keyConfig(dir)))
	if err != nil {
		return nil, err
	}
	a.noteKeySource(d)
	a.dbs[kind] = d
	return d, nil
}
