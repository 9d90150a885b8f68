package translate

import (
	"bytes"
	"errors"
)

// MaxEvent bounds one SSE event of an engine's stream. Chunks are small; an
// event this long means the engine is not sending an event stream.
const MaxEvent = 1 << 20

// ErrEventTooLong is returned by SSEDecoder.Feed for an event over MaxEvent.
var ErrEventTooLong = errors.New("an event of the engine's stream is longer than 1 MiB")

// SSEDecoder splits an engine's event stream into the data of its events,
// with any of the line endings SSE allows (LF, CRLF, CR). Fields other than
// data (event, id, retry, comments) are skipped; a data field of several
// lines is joined with LF, as the SSE standard says.
type SSEDecoder struct {
	buf  []byte
	data []byte
	has  bool // a data field was seen in the current event
	// cr: the last line ended with CR at the end of a read; an LF that
	// starts the next read belongs to it.
	cr bool
}

// Feed adds bytes read from the stream and calls fn with the data of every
// event they complete. The slice passed to fn is only valid during the
// call. An error from fn stops Feed and is returned.
func (d *SSEDecoder) Feed(b []byte, fn func(data []byte) error) error {
	if d.cr && len(b) > 0 {
		d.cr = false
		if b[0] == '\n' {
			b = b[1:]
		}
	}
	d.buf = append(d.buf, b...)
	i := 0
	for {
		rest := d.buf[i:]
		n := bytes.IndexAny(rest, "\r\n")
		if n < 0 {
			break
		}
		line := rest[:n]
		i += n + 1
		if rest[n] == '\r' {
			if n+1 < len(rest) {
				if rest[n+1] == '\n' {
					i++
				}
			} else {
				d.cr = true // the LF of a CRLF may come with the next read
			}
		}
		if err := d.line(line, fn); err != nil {
			d.compact(i)
			return err
		}
	}
	d.compact(i)
	if len(d.buf)+len(d.data) > MaxEvent {
		d.buf, d.data, d.has = d.buf[:0], d.data[:0], false
		return ErrEventTooLong
	}
	return nil
}

func (d *SSEDecoder) compact(i int) {
	n := copy(d.buf, d.buf[i:])
	d.buf = d.buf[:n]
}

func (d *SSEDecoder) line(line []byte, fn func([]byte) error) error {
	if len(line) == 0 {
		if !d.has {
			return nil
		}
		data := d.data
		d.data, d.has = d.data[:0], false
		return fn(data)
	}
	name, value, found := bytes.Cut(line, []byte(":"))
	if !found {
		value = nil
	}
	if string(name) != "data" {
		return nil
	}
	value = bytes.TrimPrefix(value, []byte(" "))
	if d.has {
		d.data = append(d.data, '\n')
	}
	d.data = append(d.data, value...)
	d.has = true
	return nil
}
