package drivertest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/engine/enginetest"
)

// BenchmarkDetectBlackHole records how long one detection takes with
// nothing on the four default ports and one endpoint that accepts
// connections and never answers (PRODUCT.md promises 5 s whatever the
// network does; the run budget is 4 s, a response-header timeout 3 s).
func BenchmarkDetectBlackHole(b *testing.B) {
	hole := enginetest.BlackHole(b)
	closed := func() string {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return "http://" + l.Addr().String()
	}
	var eps []engine.Endpoint
	for _, k := range engine.Kinds() {
		eps = append(eps, engine.Endpoint{ID: string(k), Kind: k, BaseURL: closed()})
	}
	eps = append(eps, engine.Endpoint{ID: "hole", Kind: engine.Ollama, BaseURL: "http://" + hole, UserAdded: true})
	det := &engine.Detector{Drivers: drivers(), Defaults: eps, Installed: func(engine.Kind) bool { return false }}
	for b.Loop() {
		start := time.Now()
		states, err := det.Detect(context.Background(), engine.DetectOptions{Fresh: true})
		if err != nil || len(states) != 1 || states[0].Status.State != engine.ErrorNetwork {
			b.Fatalf("detect = %+v, %v", states, err)
		}
		if el := time.Since(start); el > 5*time.Second {
			b.Fatalf("detection took %v", el)
		}
	}
}
