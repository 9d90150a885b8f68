package ui

import (
	"bytes"
	"fmt"
	"net/http"

	"rsc.io/qr"

	"github.com/unjuno/flm/core/flmerr"
)

// qrSVG draws text as a QR code (rsc.io/qr, error correction M) in SVG:
// one path of unit squares with a 4-module quiet zone, black on white
// whatever the page's colours, so a phone's camera reads it.
func qrSVG(text string) ([]byte, error) {
	c, err := qr.Encode(text, qr.M)
	if err != nil {
		return nil, err
	}
	const quiet = 4
	n := c.Size + 2*quiet
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges">`, n, n)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n)
	for y := 0; y < c.Size; y++ {
		for x := 0; x < c.Size; x++ {
			if c.Black(x, y) {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x+quiet, y+quiet)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	return b.Bytes(), nil
}

// apiQR is the QR code of a running proxy's LAN or external URL (by handle
// id and which): the page never chooses the text, so this is no general
// encoder for other sites to embed (and it needs the session secret in
// X-FLM-Session like every API: the page fetches it into a data: URL).
func (s *Server) apiQR(w http.ResponseWriter, r *http.Request) {
	id, which := r.URL.Query().Get("proxy"), r.URL.Query().Get("which")
	hs, err := s.svc.Proxies.Status(r.Context())
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	url := ""
	for _, h := range hs {
		if h.ID != id {
			continue
		}
		switch which {
		case "lan":
			url = h.URLs.LAN
		case "external":
			url = h.URLs.External
		case "local":
			url = h.URLs.Local
		}
	}
	if url == "" {
		writeError(w, http.StatusNotFound, flmerr.New(flmerr.InvalidArgument, "no %q URL for proxy %q", which, id))
		return
	}
	svg, err := qrSVG(url)
	if err != nil {
		writeError(w, http.StatusInternalServerError, flmerr.Wrap(err, flmerr.Internal, "QR code"))
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(svg)
}
