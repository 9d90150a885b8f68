// Package egresstest is an in-process SOCKS5 server (RFC 1928, CONNECT
// only, optional RFC 1929 credentials) for tests that need what a real
// server makes hard: its own resolver (names only it knows), a record of
// the destinations it was asked for, and being killed and restarted on the
// same port.
package egresstest

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// Server is a SOCKS5 server on loopback.
type Server struct {
	// Hosts resolves names for this server only: name → IP literal. Names
	// not listed are answered "host unreachable". Set before Start.
	Hosts map[string]string
	// User and Password, when set, are required (RFC 1929).
	User, Password string

	mu       sync.Mutex
	ln       net.Listener
	addr     string
	conns    map[net.Conn]struct{}
	requests []string
	wg       sync.WaitGroup
}

// Start listens on 127.0.0.1 at a random port (the first time) or at the
// port it had before (a restart).
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("egresstest: already running")
	}
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 { // a restart may race the old socket's teardown
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	s.ln, s.addr = ln, ln.Addr().String()
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.wg.Add(1)
	go s.serve(ln)
	return nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Stop closes the listener and every connection, as a killed server would.
func (s *Server) Stop() {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	s.wg.Wait()
}

// Requests are the destinations clients asked for, as sent (a name stays
// a name), in order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func (s *Server) track(c net.Conn, on bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		if s.ln == nil {
			return false
		}
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
	return true
}

func (s *Server) serve(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if !s.track(c, true) {
			_ = c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.track(c, false)
			defer c.Close()
			s.handle(c)
		}()
	}
}

func (s *Server) handle(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(c, h[:]); err != nil || h[0] != 5 {
		return
	}
	methods := make([]byte, h[1])
	if _, err := io.ReadFull(c, methods); err != nil {
		return
	}
	want := byte(0)
	if s.User != "" {
		want = 2
	}
	ok := false
	for _, m := range methods {
		ok = ok || m == want
	}
	if !ok {
		_, _ = c.Write([]byte{5, 0xff})
		return
	}
	_, _ = c.Write([]byte{5, want})
	if want == 2 && !s.auth(c) {
		return
	}
	var req [4]byte
	if _, err := io.ReadFull(c, req[:]); err != nil || req[1] != 1 {
		return
	}
	var host string
	switch req[3] {
	case 1, 4:
		ip := make([]byte, 4)
		if req[3] == 4 {
			ip = make([]byte, 16)
		}
		if _, err := io.ReadFull(c, ip); err != nil {
			return
		}
		host = net.IP(ip).String()
	case 3:
		var n [1]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		name := make([]byte, n[0])
		if _, err := io.ReadFull(c, name); err != nil {
			return
		}
		host = string(name)
	default:
		return
	}
	var p [2]byte
	if _, err := io.ReadFull(c, p[:]); err != nil {
		return
	}
	port := strconv.Itoa(int(binary.BigEndian.Uint16(p[:])))
	s.mu.Lock()
	s.requests = append(s.requests, net.JoinHostPort(host, port))
	s.mu.Unlock()
	ip := host
	if net.ParseIP(host) == nil {
		ip = s.Hosts[host]
	}
	if ip == "" {
		_, _ = c.Write([]byte{5, 4, 0, 1, 0, 0, 0, 0, 0, 0}) // host unreachable
		return
	}
	up, err := net.DialTimeout("tcp", net.JoinHostPort(ip, port), 5*time.Second)
	if err != nil {
		_, _ = c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0}) // connection refused
		return
	}
	if !s.track(up, true) {
		_ = up.Close()
		return
	}
	defer s.track(up, false)
	defer up.Close()
	_, _ = c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	_ = c.SetDeadline(time.Time{})
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

func (s *Server) auth(c net.Conn) bool {
	var h [2]byte
	if _, err := io.ReadFull(c, h[:]); err != nil || h[0] != 1 {
		return false
	}
	u := make([]byte, h[1])
	if _, err := io.ReadFull(c, u); err != nil {
		return false
	}
	var n [1]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return false
	}
	pw := make([]byte, n[0])
	if _, err := io.ReadFull(c, pw); err != nil {
		return false
	}
	if string(u) != s.User || string(pw) != s.Password {
		_, _ = c.Write([]byte{1, 1})
		return false
	}
	_, _ = c.Write([]byte{1, 0})
	return true
}
