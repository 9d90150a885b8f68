package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"time"

	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/proxy/egress"
)

// EgressResult is the egress scenario: one streaming engine on another
// loopback address (127.0.0.2, named so that only the SOCKS server
// resolves it), reached four ways in interleaved rounds.
type EgressResult struct {
	SOCKS  string             `json:"socks_server"`
	Rounds int                `json:"rounds"`
	TTFT   map[string]Latency `json:"ttft_ms"`
	Gaps   map[string]Latency `json:"inter_chunk_gap_ms"`
	Errors map[string]int     `json:"errors"`
	// AddedTTFT is FLM through SOCKS minus FLM with direct egress (p50,
	// p99): what the SOCKS hop costs a user of FLM.
	AddedTTFT50 float64 `json:"added_ttft_p50_ms"`
	AddedTTFT99 float64 `json:"added_ttft_p99_ms"`
}

// egressTargets are the four ways, in the order of the report.
var egressTargets = []string{"direct", "socks-only", "flm-direct-egress", "flm-socks-egress"}

// egressScenario starts microsocks, a second streaming engine on
// 127.0.0.2 and a second FLM proxy with --egress-mode socks5, and times
// streams: straight to the engine, through microsocks alone (FLM's egress
// dialer as the client), through FLM with direct egress (to the engine's
// address), and through FLM with socks5 egress.
func egressScenario(l *lab, short bool) (*EgressResult, error) {
	bin, err := exec.LookPath("microsocks")
	if err != nil {
		return nil, fmt.Errorf("microsocks is not installed (apt-get install microsocks)")
	}
	socksPort, enginePort := freePort(), freePort()
	socksAddr := hostport(socksPort)
	if err := l.start("microsocks", bin, "-i", "127.0.0.1", "-p", strconv.Itoa(socksPort)); err != nil {
		return nil, err
	}
	engineAddr := "127.0.0.2:" + strconv.Itoa(enginePort)
	if err := l.start("remote-engine", l.fakeBin, "--kind", "ollama", "--addr", engineAddr, "--ttft", "20ms", "--tps", "200", "--quiet"); err != nil {
		return nil, err
	}
	if err := waitHTTP("http://"+engineAddr+"/api/version", 10*time.Second); err != nil {
		return nil, err
	}
	// 127.0.0.2 as one number: inet_aton (microsocks' resolver) reads it,
	// Go parses no such literal and never resolves it, so FLM's egress
	// sends it to the SOCKS server as a name.
	const name = "2130706434"
	remoteURL := "http://" + name + ":" + strconv.Itoa(enginePort)
	steps := [][]string{
		{"engines", "add", "--kind", "ollama", "--url", remoteURL, "--id", "remote"},
		{"engines", "add", "--kind", "ollama", "--url", "http://" + engineAddr, "--id", "remote-direct"},
	}
	for _, s := range steps {
		if _, err := l.flm(s...); err != nil {
			return nil, err
		}
	}
	// The first proxy reaches engines directly; the new one through SOCKS.
	out, err := l.flm("proxy", "start", "--port", strconv.Itoa(freePort()), "--egress-mode", "socks5", "--socks5-endpoint", socksAddr)
	if err != nil {
		return nil, err
	}
	var h struct {
		Data struct {
			URLs struct{ Local string } `json:"urls"`
		}
	}
	if err := json.Unmarshal(out, &h); err != nil {
		return nil, err
	}
	socksURL := h.Data.URLs.Local
	if _, err := l.flm("proxy", "reload", "--all"); err != nil { // the first proxy learns the new engines
		return nil, err
	}
	d, err := egress.New(egress.Config{Mode: proxyctl.EgressSOCKS5, Endpoint: socksAddr})
	if err != nil {
		return nil, err
	}
	plain := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true}}
	viaSOCKS := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 8, DisableCompression: true}}
	type way struct {
		client *http.Client
		t      target
	}
	ways := map[string]way{
		"direct":            {plain, target{"direct", "http://" + engineAddr, "tiny:latest", false}},
		"socks-only":        {viaSOCKS, target{"socks-only", remoteURL, "tiny:latest", false}},
		"flm-direct-egress": {plain, target{"flm-direct-egress", l.flmURL, "flm://remote-direct/tiny:latest", true}},
		"flm-socks-egress":  {plain, target{"flm-socks-egress", socksURL, "flm://remote/tiny:latest", true}},
	}
	n := 300
	if short {
		n = 60
	}
	res := &EgressResult{SOCKS: "microsocks " + socksAddr, Rounds: n, TTFT: map[string]Latency{}, Gaps: map[string]Latency{}, Errors: map[string]int{}}
	ttfts, gaps := map[string][]time.Duration{}, map[string][]time.Duration{}
	logf("egress: %d sequential streams per way, interleaved", n)
	for range n {
		for _, name := range egressTargets {
			w := ways[name]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			tt, g, _, err := oneStream(ctx, w.client, w.t.URL, l.header(w.t), w.t.Model)
			cancel()
			if err != nil {
				if res.Errors[name] == 0 {
					l.notes = append(l.notes, "egress stream error "+name+": "+err.Error())
				}
				res.Errors[name]++
				continue
			}
			ttfts[name] = append(ttfts[name], tt)
			gaps[name] = append(gaps[name], g...)
		}
	}
	for _, name := range egressTargets {
		res.TTFT[name] = summarize(ttfts[name])
		res.Gaps[name] = summarize(gaps[name])
	}
	res.AddedTTFT50 = round3(res.TTFT["flm-socks-egress"].P50 - res.TTFT["flm-direct-egress"].P50)
	res.AddedTTFT99 = round3(res.TTFT["flm-socks-egress"].P99 - res.TTFT["flm-direct-egress"].P99)
	return res, nil
}

func egressMarkdown(e *EgressResult) string {
	s := fmt.Sprintf("### Streaming through a SOCKS5 egress (engine on 127.0.0.2: TTFT 20 ms, 200 chunks/s; %s; %d interleaved rounds; ms)\n\n", e.SOCKS, e.Rounds)
	s += "| way | TTFT p50 | TTFT p99 | gap p50 | gap p99 | gap max | errors |\n|---|---|---|---|---|---|---|\n"
	for _, n := range egressTargets {
		t, g := e.TTFT[n], e.Gaps[n]
		s += fmt.Sprintf("| %s | %.3f | %.3f | %.3f | %.3f | %.3f | %d |\n", n, t.P50, t.P99, g.P50, g.P99, g.Max, e.Errors[n])
	}
	return s + fmt.Sprintf("\nTTFT added by the SOCKS hop to FLM: %+.3f ms at p50, %+.3f ms at p99.\n\n", e.AddedTTFT50, e.AddedTTFT99)
}
