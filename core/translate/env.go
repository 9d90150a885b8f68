package translate

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Env supplies the clock and the ids of translated answers. The zero value
// uses the real clock and random ids; tests set both for golden output.
type Env struct {
	Now   func() time.Time
	NewID func(prefix string) string
}

// Time is the current time.
func (e Env) Time() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// ID returns a new id with the given prefix ("msg_", "resp_" …): 24 random
// hex digits, so ids never repeat and reveal nothing.
func (e Env) ID(prefix string) string {
	if e.NewID != nil {
		return e.NewID(prefix)
	}
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return prefix + hex.EncodeToString(b[:])
}

// Stream converts an engine's OpenAI stream into a client's API family. The
// proxy feeds it each SSE data payload of the engine's stream in order and
// writes what it returns; the output is always whole events (SSE events or
// NDJSON lines), so it can be flushed after every call.
//
// A Stream is not safe for concurrent use.
type Stream interface {
	// Feed converts one payload (the data of one engine event; "[DONE]"
	// included) and appends the client's bytes to dst. A payload the
	// converter cannot read ends the stream: the client gets its family's
	// error event, and the error is returned for the proxy's logs.
	Feed(dst, payload []byte) ([]byte, error)
	// End is called when the engine's stream ended (EOF). A stream that had
	// already reported why it stopped is completed normally (only the usage
	// may be missing); one cut before that gets an error event.
	End(dst []byte) []byte
	// Fail ends the stream with an error event, e.g. when reading from the
	// engine failed. status picks the error's type in the client's family.
	Fail(dst []byte, status int, message string) []byte
	// Done reports whether the stream has ended; later calls add nothing.
	Done() bool
}
