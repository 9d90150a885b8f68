package keychain

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"strings"

	"github.com/unjuno/flm/core/secret"
)

// MacKeychain is the macOS login keychain, driven through /usr/bin/security
// rather than the Security framework: the framework needs cgo, which would
// stop flm from cross-compiling. The value is written through `security -i`
// on stdin, never as an argument another process could read.
type MacKeychain struct {
	Scope string
	// Path is the security tool (default /usr/bin/security); tests point it
	// at a stand-in.
	Path string
}

var _ OS = (*MacKeychain)(nil)

// Name implements OS.
func (m *MacKeychain) Name() string { return "macOS Keychain" }

// macPrefix marks the encoding of stored values: security prints
// non-ASCII passwords hex-encoded, so values are stored as base64 text.
const macPrefix = "flm-base64:"

func (m *MacKeychain) tool() string {
	if m.Path != "" {
		return m.Path
	}
	return "/usr/bin/security"
}

func (m *MacKeychain) account(name string) string { return name + "@" + m.Scope }

// run executes the tool; stdin, when set, is its input.
func (m *MacKeychain) run(ctx context.Context, stdin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, m.tool(), args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err == nil {
		return out.Bytes(), nil
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, exec.ErrDot) || errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s not found: %w", m.tool(), secret.ErrUnavailable)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, macError(errb.Bytes(), err)
}

// macError maps the tool's failures (the text of SecCopyErrorMessageString
// and its exit status, which is the low byte of the OSStatus).
func macError(stderr []byte, err error) error {
	msg := strings.ToLower(string(stderr))
	var ee *exec.ExitError
	code := -1
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	switch {
	case strings.Contains(msg, "could not be found"), code == 44: // errSecItemNotFound
		return fmt.Errorf("keychain item: %w", secret.ErrNotFound)
	case strings.Contains(msg, "interaction is not allowed"), strings.Contains(msg, "keychain is locked"),
		strings.Contains(msg, "user canceled"), code == 36: // errSecInteractionNotAllowed, errSecAuthFailed
		return fmt.Errorf("the macOS keychain is locked; unlock it (`security unlock-keychain`) and retry: %w", secret.ErrLocked)
	case strings.Contains(msg, "no default keychain"), strings.Contains(msg, "no such keychain"):
		return fmt.Errorf("no login keychain: %w", secret.ErrUnavailable)
	}
	return fmt.Errorf("security: %s (%v)", errString(stderr), err)
}

// shellQuote quotes s for the `security -i` command parser.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// Get implements secret.Store.
func (m *MacKeychain) Get(ctx context.Context, name string) ([]byte, error) {
	out, err := m.run(ctx, "", "find-generic-password", "-s", Service, "-a", m.account(name), "-w")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := strings.TrimRight(string(out), "\r\n")
	if !strings.HasPrefix(s, macPrefix) {
		return []byte(s), nil
	}
	v, err := base64.StdEncoding.DecodeString(s[len(macPrefix):])
	if err != nil {
		return nil, fmt.Errorf("%s: the keychain item is not in flm's format", name)
	}
	return v, nil
}

// Put implements secret.Store (-U updates an existing item).
func (m *MacKeychain) Put(ctx context.Context, name string, value []byte) error {
	if !secret.ValidValue(value) {
		return fmt.Errorf("%s: value is not printable text of 1..%d bytes", name, secret.MaxValueBytes)
	}
	line := fmt.Sprintf("add-generic-password -U -s %s -a %s -l %s -w %s\n",
		shellQuote(Service), shellQuote(m.account(name)), shellQuote(label(m.Scope, name)),
		shellQuote(macPrefix+base64.StdEncoding.EncodeToString(value)))
	if _, err := m.run(ctx, line, "-i"); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Delete implements secret.Store.
func (m *MacKeychain) Delete(ctx context.Context, name string) error {
	if _, err := m.run(ctx, "", "delete-generic-password", "-s", Service, "-a", m.account(name)); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
