package policy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/unjuno/flm/core/flmerr"
)

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		if len(tc.doc) < 4096 {
			f.Add([]byte(tc.doc))
		}
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := Parse(doc)
		if err != nil {
			if !flmerr.Is(err, flmerr.PolicyInvalid) {
				t.Fatalf("error without POLICY_INVALID: %v", err)
			}
			return
		}
		// Whatever we accept must be JSON every other reader accepts.
		if !json.Valid(doc) {
			t.Fatalf("accepted a document encoding/json rejects: %q", doc)
		}
		out := p.Document()
		q, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Document()) failed: %v\ninput:    %q\ndocument: %q", err, doc, out)
		}
		if again := q.Document(); !bytes.Equal(out, again) {
			t.Fatalf("Document not stable:\n%q\n%q", out, again)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed the policy:\n%#v\n%#v", p, q)
		}
		_ = p.Compile()
	})
}
