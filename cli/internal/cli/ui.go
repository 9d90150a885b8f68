package cli

import (
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/unjuno/flm/cli/internal/truststore"
	"github.com/unjuno/flm/cli/internal/ui"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/core/settings"
)

// UICmd is `flm ui`: the local web UI on 127.0.0.1, calling the same core
// services as the commands (cli/internal/ui).
type UICmd struct {
	Port int  `help:"Port on 127.0.0.1 (default: a free one)." placeholder:"PORT"`
	Open bool `help:"Open the UI in the default browser."`
}

// uiServices builds the services the UI calls, opening both databases
// first: the App opens them lazily and is not safe for concurrent first
// use, and the UI serves requests concurrently.
func (a *App) uiServices() (ui.Services, error) {
	keys, err := a.keys()
	if err != nil {
		return ui.Services{}, err
	}
	pol, err := a.policies()
	if err != nil {
		return ui.Services{}, err
	}
	prox, err := a.proxyService()
	if err != nil {
		return ui.Services{}, err
	}
	det, err := a.detector()
	if err != nil {
		return ui.Services{}, err
	}
	set, err := a.settings()
	if err != nil {
		return ui.Services{}, err
	}
	dir, err := a.DataDir()
	if err != nil {
		return ui.Services{}, err
	}
	flm := "flm --data-dir " + shellQuote(dir)
	return ui.Services{
		// The wizard's firewall step runs commands only for a root UI and
		// the user's consent; logs and rollback scripts go to
		// <data>/logs/security. install-ca is shown, never run: as the
		// data dir's owner first (it creates the local CA and exports its
		// certificate), then with root rights.
		Wizard: ui.Wizard{
			LogDir:   filepath.Join(dir, "logs", "security"),
			LookPath: exec.LookPath,
			Run:      runArgv,
			InstallCACommand: flm + " security install-ca\n" +
				truststore.SudoHint(flm+" security install-ca"),
		},
		Keys: keys, Policy: pol, Proxies: prox, Engines: det,
		Apply: func(_ context.Context, parts proxyctl.Parts) []proxyctl.Result { return a.applyToProxies(parts) },
		DefaultPort: func(ctx context.Context) (int, error) {
			return set.Int(ctx, settings.ProxyPort)
		},
		ChatClient: func(base string) *http.Client {
			_, c, _ := a.chatTarget(base, "")
			return c
		},
	}, nil
}

// Run serves the UI until interrupted.
func (c UICmd) Run(a *App) error {
	if c.Port < 0 || c.Port > 65535 {
		return flmerr.New(flmerr.InvalidArgument, "--port must be 1..65535 (or left out for a free one)")
	}
	svc, err := a.uiServices()
	if err != nil {
		return err
	}
	ln, err := ui.Listen(net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)))
	if err != nil {
		if flmerr.Is(err, flmerr.ProxyPortInUse) {
			return flmerr.New(flmerr.InvalidArgument, "port %d on 127.0.0.1 is in use; choose another --port or leave it out", c.Port)
		}
		return err
	}
	srv, token, err := ui.New(ln, svc, nil)
	if err != nil {
		_ = ln.Close()
		return err
	}
	url := srv.URL(token)
	// The URL goes to stdout only: it holds the session token, which is
	// never logged.
	if a.Format == "text" {
		fmt.Fprintf(a.Stdout, "FLM UI: %s\nThe link works once. Press Ctrl-C to stop.\n", url)
	} else if err := a.print(map[string]any{"url": url, "listen_addr": ln.Addr().String()}, nil); err != nil {
		return err
	}
	if c.Open {
		dir, err := a.DataDir()
		if err == nil {
			var cleanup func()
			cleanup, err = openViaFile(dir, url, openFileLifetime)
			if err == nil {
				defer cleanup()
			}
		}
		if err != nil {
			fmt.Fprintf(a.Stderr, "warning: could not open a browser (%v); open the URL above by hand\n", err)
		}
	}
	return srv.Serve(a.ctx)
}

// openFileLifetime is how long the sign-in file of --open exists: long
// enough for a browser to start and read it.
const openFileLifetime = 30 * time.Second

// uiOpener starts the desktop's opener with argv and does not wait for it;
// tests replace it to see what it gets.
var uiOpener = func(argv []string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}

// openerArgv is the program that opens target with the desktop's default
// application on goos. target is an argument, never part of a shell line.
func openerArgv(goos, target string) []string {
	switch goos {
	case "darwin":
		return []string{"open", target}
	case "windows":
		return []string{"rundll32", "url.dll,FileProtocolHandler", target}
	}
	return []string{"xdg-open", target}
}

// openViaFile opens url in the browser without putting it on a command
// line (argv is readable by every local user in ps and /proc/*/cmdline,
// and the URL carries the sign-in token): it writes an HTML file that
// redirects to url, readable by this user only (0600, in a fresh 0700
// directory under dir), and hands the file's path to the opener. The
// file is removed after lifetime, or by the returned cleanup, whichever
// comes first.
func openViaFile(dir, url string, lifetime time.Duration) (cleanup func(), err error) {
	tmp, err := os.MkdirTemp(dir, ".ui-open-")
	if err != nil {
		return nil, err
	}
	var once sync.Once
	cleanup = func() { once.Do(func() { _ = os.RemoveAll(tmp) }) }
	path := filepath.Join(tmp, "flm-ui.html")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		cleanup()
		return nil, err
	}
	u := html.EscapeString(url)
	// Not served by the UI (no CSP applies): a meta refresh, plus a link
	// if the browser does not follow it. No script.
	_, err = fmt.Fprintf(f, "<!doctype html>\n<html><head><meta charset=\"utf-8\">"+
		"<meta name=\"referrer\" content=\"no-referrer\">"+
		"<meta http-equiv=\"refresh\" content=\"0;url=%s\"><title>FLM UI</title></head>\n"+
		"<body><p><a href=\"%s\">Open the FLM UI</a></p></body></html>\n", u, u)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = uiOpener(openerArgv(runtime.GOOS, path))
	}
	if err != nil {
		cleanup()
		return nil, err
	}
	time.AfterFunc(lifetime, cleanup)
	return cleanup, nil
}

// runArgv runs a firewall command of the wizard: argv as a program, never
// through a shell (the nftables rollback's sh -c script is fixed text of
// the firewall package), with stdin; combined output.
func runArgv(ctx context.Context, argv []string, stdin string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	return cmd.CombinedOutput()
}
