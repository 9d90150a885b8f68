package flmerr

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

func TestCodeOfAndUserError(t *testing.T) {
	base := Wrap(fs.ErrPermission, IOError, "write %s", "config.db")
	wrapped := fmt.Errorf("open stores: %w", base)

	if got := CodeOf(wrapped); got != IOError {
		t.Fatalf("CodeOf = %q, want IO_ERROR", got)
	}
	if !errors.Is(wrapped, fs.ErrPermission) {
		t.Fatal("cause lost: errors.Is(fs.ErrPermission) = false")
	}
	if base.Error() != "write config.db: permission denied" {
		t.Fatalf("message = %q", base.Error())
	}
	if CodeOf(errors.New("plain")) != Internal {
		t.Fatal("an unclassified error must be INTERNAL")
	}
	if CodeOf(nil) != "" || Is(nil, Internal) {
		t.Fatal("nil has no code")
	}
	if !Is(New(PolicyInvalid, "x"), PolicyInvalid) {
		t.Fatal("Is(PolicyInvalid) = false")
	}
	for _, c := range []Code{EngineNotFound, PolicyInvalid, ConfigNotSet, APIKeyNotFound, InvalidArgument, DBReadOnly, DBKeyUnavailable, ProxyPortInUse} {
		if !c.UserError() {
			t.Errorf("%s must be a user error (exit 1)", c)
		}
	}
	for _, c := range []Code{DBError, MigrationFailed, IOError, Internal, ""} {
		if c.UserError() {
			t.Errorf("%q must not be a user error", c)
		}
	}
}

func TestProxyAnswer(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		code   Code
		msg    string
	}{
		{401, `{"error":{"message":"invalid api key","code":"invalid_api_key"}}`, APIKeyNotFound, "proxy answered 401 (invalid_api_key): invalid api key"},
		{404, `{"error":{"message":"engine ollama has no model \"x\"","code":"model_not_found"}}`, EngineNotFound, `(model_not_found): engine ollama has no model "x"`},
		{400, `{"error":{"message":"bad","code":null}}`, InvalidArgument, "proxy answered 400: bad"},
		{502, `{"error":{"message":"egress down","code":"egress_unavailable"}}`, EngineNetworkError, "egress down"},
		{500, `plain text`, EngineAPIError, "plain text"},
		{503, ``, EngineNetworkError, "Service Unavailable"},
	} {
		err := ProxyAnswer(c.status, []byte(c.body))
		if err.Code != c.code || !strings.Contains(err.Message, c.msg) {
			t.Errorf("%d %s: %s %q", c.status, c.body, err.Code, err.Message)
		}
	}
}
