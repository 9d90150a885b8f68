package proxyctl

import (
	"context"
	"errors"
	"time"

	"github.com/unjuno/flm/core/certs"
	"github.com/unjuno/flm/core/flmerr"
)

// The Service's ports. proxyctltest has an in-memory fake of each and the
// conformance suites the real adapters (cli/internal) run.

// HandleStore keeps the handles of running proxies and the configuration
// each was started with.
//
// Save replaces a handle with the same ID, Control included. List returns
// every handle sorted by ID, with its Control. Remove of an unknown id is
// not an error. Implementations are safe for concurrent use (and, for the
// CLI's, across processes); errors carry their flmerr codes (DB_READ_ONLY
// …).
type HandleStore interface {
	Save(ctx context.Context, h Handle, cfg Config) error
	List(ctx context.Context) ([]Handle, error)
	Remove(ctx context.Context, id string) error
}

// Signal is what Processes.Signal asks of a process.
type Signal int

// The signals.
const (
	// Terminate asks for a graceful stop (SIGTERM; a hard kill where the
	// OS has no such signal).
	Terminate Signal = iota + 1
	// Kill stops the process at once.
	Kill
	// Hangup asks an older proxy without a control channel to reload
	// (SIGHUP); ErrUnsupported where the OS has none.
	Hangup
)

// ErrUnsupported is returned by ports for what the OS cannot do.
var ErrUnsupported = errors.New("not supported on this operating system")

// Processes observes and signals OS processes by pid.
//
// Alive is false for pid <= 0, an exited process and a zombie. Signal to a
// process that is gone returns an error. IsProxy reports whether pid's
// command line is that of an FLM proxy serving port (`proxy start
// --foreground --port P`); known is false where the OS does not tell.
type Processes interface {
	Alive(pid int) bool
	Signal(pid int, sig Signal) error
	IsProxy(pid, port int) (is, known bool)
}

// Launcher starts a proxy process in the background.
//
// Launch starts a process that serves cfg (and records its handle once it
// listens) and returns its pid without waiting for it. LastWords tells what
// the process last reported: its own error when it wrote one, and where its
// log is.
type Launcher interface {
	Launch(ctx context.Context, cfg Config) (pid int, err error)
	LastWords(cfg Config) LastWords
}

// LastWords is what a launched proxy left behind.
type LastWords struct {
	Code    flmerr.Code // the process's own error code, "" if none
	Message string      // its error message or its last log line
	Log     string      // where its log is
}

// Prober asks a proxy's public listener whether it answers.
//
// Probe returns the instance id (X-Flm-Instance) of a 200 answer to
// GET /health at h.URLs.Local, within a few seconds; any other outcome is
// an error.
type Prober interface {
	Probe(ctx context.Context, h Handle) (instance string, err error)
}

// Controller talks to a proxy's control channel (control.go).
//
// Reload returns the proxy's Applied once it applied parts; an unreachable
// channel is PROXY_NOT_RUNNING, a refusal or a failed reload carries the
// code the proxy sent. It honours ctx's deadline.
//
// Identify asks the channel, without changing anything, whether it is h's
// proxy: nil when it accepts h.Control.Token (only that proxy holds it), an
// error wrapping ErrNotThisProxy when the address provably holds no proxy
// of h (nothing listens there, or what listens refuses the token), and any
// other error when it cannot tell (no answer before ctx's deadline).
type Controller interface {
	Reload(ctx context.Context, h Handle, parts Parts) (Applied, error)
	Identify(ctx context.Context, h Handle) error
}

// ErrNotThisProxy is what Controller.Identify wraps when a handle's control
// address proves that its proxy no longer runs there.
var ErrNotThisProxy = errors.New("not this proxy")

// KeyChecker tells whether an API key could use a proxy now.
type KeyChecker interface {
	HasActiveKey(ctx context.Context) (bool, error)
}

// PortChecker tests ports before a proxy is started.
//
// Free returns nil when bind:port can be listened on now. Holder names what
// is known to listen on port (e.g. "llama.cpp (detected at http://…)"), ""
// when nothing is known.
type PortChecker interface {
	Free(ctx context.Context, bind string, port int) error
	Holder(ctx context.Context, port int) string
}

// LANFinder finds the address other devices reach this machine at.
//
// Addr is the first private IPv4 address of an up interface, "" when there
// is none.
type LANFinder interface {
	Addr() string
}

// Clock tells the time and waits. Sleep returns ctx's error if ctx ends
// first.
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// Sleep implements Clock.
func (SystemClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// CertFinder tells which certificate a proxy's HTTPS listener serves
// (Service.Status). It returns nil, nil when there is none to show.
type CertFinder interface {
	Certificate(ctx context.Context, h Handle) (*certs.Info, error)
}
