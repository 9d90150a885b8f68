package egress

import (
	"context"
	"errors"
	"io"
	"net"
	"time"
)

// StartupTries is how many times the start-up check tries the endpoint
// (PRODUCT.md §8).
const StartupTries = 3

// Check tries once to reach the SOCKS server and complete a SOCKS5
// handshake (method negotiation and, with credentials, RFC 1929
// authentication). It asks the server to connect nowhere: a check sends
// no traffic beyond the SOCKS server. Direct mode needs no check.
func (d *Dialer) Check(ctx context.Context) error {
	if !d.SOCKS() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := d.direct.DialContext(ctx, "tcp", d.endpoint)
	if err != nil {
		return d.unavailable(err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if err := handshake(c, d.auth); err != nil {
		return d.unavailable(err)
	}
	return nil
}

// StartupCheck is Check tried StartupTries times, wait apart; it returns
// the last failure.
func (d *Dialer) StartupCheck(ctx context.Context, wait time.Duration) error {
	var err error
	for i := range StartupTries {
		if err = d.Check(ctx); err == nil {
			return nil
		}
		if i < StartupTries-1 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(wait):
			}
		}
	}
	return err
}

// handshake is a SOCKS5 client greeting (RFC 1928 §3) and, when the server
// picks it, username/password authentication (RFC 1929).
func handshake(rw io.ReadWriter, auth *Auth) error {
	greet := []byte{5, 1, 0}
	if auth != nil {
		greet = []byte{5, 2, 0, 2}
	}
	if _, err := rw.Write(greet); err != nil {
		return err
	}
	var b [2]byte
	if _, err := io.ReadFull(rw, b[:]); err != nil {
		return err
	}
	if b[0] != 5 {
		return errors.New("unexpected protocol version")
	}
	switch b[1] {
	case 0:
		return nil
	case 2:
		if auth == nil {
			return errors.New("no acceptable authentication methods")
		}
		msg := append([]byte{1, byte(len(auth.User))}, auth.User...)
		msg = append(append(msg, byte(len(auth.Password))), auth.Password...)
		if _, err := rw.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(rw, b[:]); err != nil {
			// Servers close the connection on bad credentials (microsocks).
			return errors.New("username/password authentication failed")
		}
		if b[1] != 0 {
			return errors.New("username/password authentication failed")
		}
		return nil
	}
	return errors.New("no acceptable authentication methods")
}

// Explain tells, after a connection to host (a name or an IP literal,
// with or without port) failed, whether the egress is the cause: in SOCKS
// modes, for a destination that goes through SOCKS, the server fails a
// fresh Check (a pooled connection through a SOCKS server that went away
// breaks with a mere "connection reset"). Nil otherwise.
func (d *Dialer) Explain(ctx context.Context, host string) error {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !d.SOCKS() || Loopback(host) {
		return nil
	}
	return d.Check(ctx)
}
