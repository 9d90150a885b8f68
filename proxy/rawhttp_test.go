package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawClient speaks HTTP/1.1 on one kept-alive connection and reports the
// chunks of a chunked response as they arrive: a chunk is what the server
// wrote and flushed in one go, so it shows how a proxy framed a stream,
// which net/http's client hides.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
	host string
}

func dialRaw(t testing.TB, baseURL string) *rawClient {
	t.Helper()
	host := strings.TrimPrefix(baseURL, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{conn: conn, br: bufio.NewReaderSize(conn, 64<<10), host: host}
}

type rawChunk struct {
	at   time.Duration // since the request was sent
	data []byte
}

type rawResponse struct {
	status int
	header http.Header
	chunks []rawChunk
}

// post sends a POST with a JSON body and reads the whole response.
func (c *rawClient) post(path, body string, hdr ...string) (rawResponse, error) {
	var req strings.Builder
	fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", path, c.host, len(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		fmt.Fprintf(&req, "%s: %s\r\n", hdr[i], hdr[i+1])
	}
	req.WriteString("\r\n")
	req.WriteString(body)
	start := time.Now()
	if _, err := io.WriteString(c.conn, req.String()); err != nil {
		return rawResponse{}, err
	}
	return c.read(start)
}

func (c *rawClient) read(start time.Time) (rawResponse, error) {
	tp := textproto.NewReader(c.br)
	line, err := tp.ReadLine()
	if err != nil {
		return rawResponse{}, err
	}
	_, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	var resp rawResponse
	resp.status, _ = strconv.Atoi(code)
	mh, err := tp.ReadMIMEHeader()
	if err != nil {
		return resp, err
	}
	resp.header = http.Header(mh)
	if resp.header.Get("Transfer-Encoding") != "chunked" {
		n, _ := strconv.Atoi(resp.header.Get("Content-Length"))
		b := make([]byte, n)
		_, err := io.ReadFull(c.br, b)
		resp.chunks = []rawChunk{{time.Since(start), b}}
		return resp, err
	}
	for {
		sz, err := tp.ReadLine()
		if err != nil {
			return resp, err
		}
		sz, _, _ = strings.Cut(sz, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(sz), 16, 64)
		if err != nil {
			return resp, fmt.Errorf("chunk size %q: %v", sz, err)
		}
		if n == 0 {
			_, err := tp.ReadLine() // no trailers from the servers under test
			return resp, err
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(c.br, b); err != nil {
			return resp, err
		}
		if !bytes.HasSuffix(b, []byte("\r\n")) {
			return resp, fmt.Errorf("chunk not ended by CRLF")
		}
		resp.chunks = append(resp.chunks, rawChunk{time.Since(start), b[:n]})
	}
}

// sseEventsIn splits an SSE byte stream (LF endings) into its events, each
// with its terminating blank line.
func sseEventsIn(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\n\n"))
		if i < 0 {
			return append(out, b)
		}
		out = append(out, b[:i+2])
		b = b[i+2:]
	}
	return out
}
