package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

const chatBody = `{"model":%q,"messages":[{"role":"user","content":"Tell me a story about a cat."}],"max_tokens":16}`

// target is one way of reaching the engine.
type target struct {
	Name  string
	URL   string
	Model string
	Auth  bool
}

func (l *lab) targets() []target {
	ts := []target{
		{"direct", l.mockURL, "tiny:latest", false},
		{"bare-go-proxy", l.bareURL, "tiny:latest", false},
	}
	if l.nginxURL != "" {
		ts = append(ts, target{"nginx", l.nginxURL, "tiny:latest", false})
	}
	return append(ts, target{"flm", l.flmURL, "flm://mock/tiny:latest", true})
}

func (l *lab) header(t target) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	if t.Auth {
		h.Set("Authorization", "Bearer "+l.key)
	}
	return h
}

// Latency is a latency summary in milliseconds.
type Latency struct {
	P50, P90, P99, Max float64
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }

// OverheadRow is one target at one open-loop rate, over all rounds.
type OverheadRow struct {
	Rate      int     `json:"rate"`
	Target    string  `json:"target"`
	Latency   Latency `json:"latency_ms"`
	AddedP50  float64 `json:"added_p50_ms"`
	AddedP99  float64 `json:"added_p99_ms"`
	ErrorRate float64 `json:"error_rate"`
	Requests  uint64  `json:"requests"`
}

// overhead: open-loop load at fixed rates (vegeta), interleaved rounds,
// non-streaming chat; latency of each target and its difference to direct.
func overhead(l *lab, short bool) []OverheadRow {
	rates := []int{500, 1000, 2000}
	dur, rounds := 15*time.Second, 3
	if short {
		dur, rounds = 4*time.Second, 2
	}
	type acc struct {
		m vegeta.Metrics
	}
	results := map[string]*acc{}
	for r := range rounds {
		for _, rate := range rates {
			for _, t := range l.targets() {
				logf("overhead round %d: %d req/s → %s", r+1, rate, t.Name)
				key := fmt.Sprintf("%d|%s", rate, t.Name)
				if results[key] == nil {
					results[key] = &acc{}
				}
				tg := vegeta.NewStaticTargeter(vegeta.Target{Method: "POST", URL: t.URL + "/v1/chat/completions", Body: []byte(fmt.Sprintf(chatBody, t.Model)), Header: l.header(t)})
				// A fresh attacker per attack: vegeta's does not restart cleanly.
				atk := vegeta.NewAttacker(vegeta.KeepAlive(true), vegeta.Workers(64), vegeta.MaxWorkers(4096), vegeta.Timeout(10*time.Second), vegeta.Connections(4096), vegeta.MaxConnections(4096))
				for res := range atk.Attack(tg, vegeta.Rate{Freq: rate, Per: time.Second}, dur, key) {
					results[key].m.Add(res)
				}
				time.Sleep(300 * time.Millisecond)
			}
		}
	}
	var rows []OverheadRow
	for _, rate := range rates {
		direct := results[fmt.Sprintf("%d|direct", rate)]
		direct.m.Close()
		for _, t := range l.targets() {
			a := results[fmt.Sprintf("%d|%s", rate, t.Name)]
			a.m.Close()
			row := OverheadRow{Rate: rate, Target: t.Name, Requests: a.m.Requests, ErrorRate: 1 - a.m.Success,
				Latency: Latency{ms(a.m.Latencies.P50), ms(a.m.Latencies.P90), ms(a.m.Latencies.P99), ms(a.m.Latencies.Max)}}
			row.AddedP50 = round3(row.Latency.P50 - ms(direct.m.Latencies.P50))
			row.AddedP99 = round3(row.Latency.P99 - ms(direct.m.Latencies.P99))
			rows = append(rows, row)
		}
	}
	return rows
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// ThroughputRow is one target's closed-loop maximum.
type ThroughputRow struct {
	Target      string  `json:"target"`
	Concurrency int     `json:"concurrency"`
	ReqPerSec   float64 `json:"req_per_sec"`
	Errors      int64   `json:"errors"`
	VsBare      float64 `json:"vs_bare_go_proxy"`
	VsNginx     float64 `json:"vs_nginx,omitempty"`
}

// throughput: closed loop, fixed concurrency, as fast as each target goes.
func throughput(l *lab, short bool) []ThroughputRow {
	dur, rounds, conc := 10*time.Second, 3, 32
	if short {
		dur, rounds = 4*time.Second, 2
	}
	tr := &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	sum := map[string]float64{}
	errs := map[string]int64{}
	for r := range rounds {
		for _, t := range l.targets() {
			logf("throughput round %d → %s", r+1, t.Name)
			body := []byte(fmt.Sprintf(chatBody, t.Model))
			hdr := l.header(t)
			var ok, bad atomic.Int64
			ctx, cancel := context.WithTimeout(context.Background(), dur)
			var wg sync.WaitGroup
			for range conc {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						req, _ := http.NewRequestWithContext(ctx, "POST", t.URL+"/v1/chat/completions", bytes.NewReader(body))
						req.Header = hdr.Clone()
						resp, err := client.Do(req)
						if err != nil {
							if ctx.Err() == nil {
								bad.Add(1)
							}
							continue
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == 200 {
							ok.Add(1)
						} else {
							bad.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			cancel()
			sum[t.Name] += float64(ok.Load()) / dur.Seconds()
			errs[t.Name] += bad.Load()
			time.Sleep(300 * time.Millisecond)
		}
	}
	var rows []ThroughputRow
	for _, t := range l.targets() {
		rows = append(rows, ThroughputRow{Target: t.Name, Concurrency: conc, ReqPerSec: math.Round(sum[t.Name] / float64(rounds)), Errors: errs[t.Name]})
	}
	for i := range rows {
		for _, o := range rows {
			if o.Target == "bare-go-proxy" && o.ReqPerSec > 0 {
				rows[i].VsBare = round3(rows[i].ReqPerSec / o.ReqPerSec)
			}
			if o.Target == "nginx" && o.ReqPerSec > 0 {
				rows[i].VsNginx = round3(rows[i].ReqPerSec / o.ReqPerSec)
			}
		}
	}
	return rows
}

// StreamResult holds the streaming scenario.
type StreamResult struct {
	TTFT       map[string]Latency `json:"ttft_ms"`
	Gaps       map[string]Latency `json:"inter_chunk_gap_ms"`
	Chunks     map[string]float64 `json:"chunks_per_stream"`
	AddedTTFT  float64            `json:"added_ttft_p99_ms"`
	Concurrent ConcurrentStreams  `json:"concurrent"`
}

// ConcurrentStreams is the many-streams part.
type ConcurrentStreams struct {
	Streams          int     `json:"streams"`
	Seconds          float64 `json:"seconds"`
	Completed        int64   `json:"completed"`
	Errors           int64   `json:"errors"`
	MaxRSSMB         float64 `json:"max_rss_mb"`
	GoroutinesBefore int     `json:"goroutines_before"`
	GoroutinesPeak   int     `json:"goroutines_peak"`
	GoroutinesAfter  int     `json:"goroutines_after"`
	SettleSeconds    float64 `json:"settle_seconds"`
}

func summarize(xs []time.Duration) Latency {
	if len(xs) == 0 {
		return Latency{}
	}
	slices.Sort(xs)
	q := func(p float64) float64 { return ms(xs[min(len(xs)-1, int(p*float64(len(xs))))]) }
	return Latency{q(0.5), q(0.9), q(0.99), ms(xs[len(xs)-1])}
}

// oneStream sends a streaming chat and times the first event and the gaps.
func oneStream(ctx context.Context, client *http.Client, url string, hdr http.Header, model string) (ttft time.Duration, gaps []time.Duration, chunks int, err error) {
	// Usage is asked for explicitly, so the direct request and FLM's
	// upstream request are the same and the engine sends as many chunks.
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`, model)
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(body))
	req.Header = hdr.Clone()
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, nil, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	last := start
	done := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		now := time.Now()
		if chunks == 0 {
			ttft = now.Sub(start)
		} else {
			gaps = append(gaps, now.Sub(last))
		}
		last = now
		chunks++
		if line == "data: [DONE]" {
			done = true
		}
		if strings.Contains(line, `"stream_error"`) {
			return ttft, gaps, chunks, fmt.Errorf("stream error event")
		}
	}
	if !done {
		return ttft, gaps, chunks, fmt.Errorf("no [DONE]")
	}
	return ttft, gaps, chunks, sc.Err()
}

func streaming(l *lab, short bool) *StreamResult {
	n, conc, hold := 500, 1000, 60*time.Second
	if short {
		n, hold = 60, 15*time.Second
	}
	res := &StreamResult{TTFT: map[string]Latency{}, Gaps: map[string]Latency{}, Chunks: map[string]float64{}}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	targets := []target{{"direct", l.streamURL, "tiny:latest", false}, {"flm", l.flmURL, "flm://stream/tiny:latest", true}}
	ttfts := map[string][]time.Duration{}
	gaps := map[string][]time.Duration{}
	chunks := map[string]int{}
	logf("streaming: %d sequential streams per target, interleaved", n)
	for range n {
		for _, t := range targets {
			tt, g, c, err := oneStream(context.Background(), client, t.URL, l.header(t), t.Model)
			if err != nil {
				l.notes = append(l.notes, "stream error "+t.Name+": "+err.Error())
				continue
			}
			ttfts[t.Name] = append(ttfts[t.Name], tt)
			gaps[t.Name] = append(gaps[t.Name], g...)
			chunks[t.Name] += c
		}
	}
	for _, t := range targets {
		res.TTFT[t.Name] = summarize(ttfts[t.Name])
		res.Gaps[t.Name] = summarize(gaps[t.Name])
		res.Chunks[t.Name] = math.Round(float64(chunks[t.Name])/float64(max(1, len(ttfts[t.Name])))*10) / 10
	}
	res.AddedTTFT = round3(res.TTFT["flm"].P99 - res.TTFT["direct"].P99)

	logf("streaming: %d concurrent streams through FLM for %v", conc, hold)
	cs := &res.Concurrent
	cs.Streams, cs.Seconds = conc, hold.Seconds()
	cs.GoroutinesBefore = l.goroutines()
	many := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: 0, DisableCompression: true}}
	ctx, cancel := context.WithTimeout(context.Background(), hold)
	var wg sync.WaitGroup
	var completed, errs atomic.Int64
	t := targets[1]
	hdr := l.header(t)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_, _, _, err := oneStream(ctx, many, t.URL, hdr, t.Model)
				switch {
				case err == nil:
					completed.Add(1)
				case ctx.Err() == nil:
					errs.Add(1)
				}
			}
		}()
	}
	tick := time.NewTicker(500 * time.Millisecond)
	for ctx.Err() == nil {
		<-tick.C
		cs.MaxRSSMB = math.Max(cs.MaxRSSMB, l.flmRSS())
		cs.GoroutinesPeak = max(cs.GoroutinesPeak, l.goroutines())
	}
	tick.Stop()
	wg.Wait()
	cancel()
	many.CloseIdleConnections()
	// Idle upstream connections close after the proxy's 30 s idle timeout;
	// wait for the goroutine count to settle back near its baseline.
	settle := time.Now()
	for cs.GoroutinesAfter = l.goroutines(); cs.GoroutinesAfter > cs.GoroutinesBefore+10 && time.Since(settle) < 45*time.Second; cs.GoroutinesAfter = l.goroutines() {
		time.Sleep(time.Second)
	}
	cs.SettleSeconds = math.Round(time.Since(settle).Seconds())
	cs.Completed, cs.Errors = completed.Load(), errs.Load()
	cs.MaxRSSMB = math.Round(cs.MaxRSSMB*10) / 10
	return res
}

// LoadResult is the plan's load test: 100 requests/min of chat and
// embeddings, streaming and not.
type LoadResult struct {
	Minutes float64            `json:"minutes"`
	P95     map[string]float64 `json:"p95_ms"`
	P50     map[string]float64 `json:"p50_ms"`
	Errors  map[string]float64 `json:"error_rate"`
	N       map[string]uint64  `json:"requests"`
}

func planLoad(l *lab, short bool) *LoadResult {
	dur := 10 * time.Minute
	if short {
		dur = 2 * time.Minute
	}
	res := &LoadResult{Minutes: dur.Minutes(), P95: map[string]float64{}, P50: map[string]float64{}, Errors: map[string]float64{}, N: map[string]uint64{}}
	mk := func(t target) vegeta.Targeter {
		h := l.header(t)
		var ts []vegeta.Target
		for _, b := range []string{
			fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}]}`, t.Model),
			fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`, t.Model),
		} {
			ts = append(ts, vegeta.Target{Method: "POST", URL: t.URL + "/v1/chat/completions", Body: []byte(b), Header: h})
		}
		emb := strings.Replace(t.Model, "tiny:latest", "tiny-embed:latest", 1)
		ts = append(ts, vegeta.Target{Method: "POST", URL: t.URL + "/v1/embeddings", Body: []byte(fmt.Sprintf(`{"model":%q,"input":["hello"]}`, emb)), Header: h})
		return vegeta.NewStaticTargeter(ts...)
	}
	targets := []target{{"direct", l.streamURL, "tiny:latest", false}, {"flm", l.flmURL, "flm://stream/tiny:latest", true}}
	logf("plan's load test: 100 req/min per target for %v (direct and FLM at once)", dur)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			atk := vegeta.NewAttacker(vegeta.Timeout(30 * time.Second))
			var m vegeta.Metrics
			for r := range atk.Attack(mk(t), vegeta.Rate{Freq: 100, Per: time.Minute}, dur, t.Name) {
				m.Add(r)
			}
			m.Close()
			mu.Lock()
			defer mu.Unlock()
			res.P95[t.Name] = ms(m.Latencies.P95)
			res.P50[t.Name] = ms(m.Latencies.P50)
			res.Errors[t.Name] = round3(1 - m.Success)
			res.N[t.Name] = m.Requests
		}()
	}
	wg.Wait()
	return res
}

// LifecycleResult holds start/restart and detection times.
type LifecycleResult struct {
	StartToHealthyMS  float64 `json:"start_to_healthy_ms"`
	RestartMedianMS   float64 `json:"restart_median_ms"`
	RestartMaxMS      float64 `json:"restart_max_ms"`
	DetectNothingMS   float64 `json:"detect_nothing_running_ms"`
	DetectFourFakesMS float64 `json:"detect_four_fakes_ms"`
}

func timeIt(f func() error) (float64, error) {
	start := time.Now()
	err := f()
	return ms(time.Since(start)), err
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

func lifecycle(l *lab, short bool) *LifecycleResult {
	res := &LifecycleResult{}
	port := freePort()
	logf("lifecycle: start, 10 restarts, detection")
	if d, err := timeIt(func() error { _, err := l.flm("proxy", "start", "--port", fmt.Sprint(port)); return err }); err == nil {
		res.StartToHealthyMS = d
	} else {
		l.notes = append(l.notes, err.Error())
	}
	var restarts []float64
	for range 10 {
		d, err := timeIt(func() error {
			if _, err := l.flm("proxy", "stop", "--port", fmt.Sprint(port)); err != nil {
				return err
			}
			_, err := l.flm("proxy", "start", "--port", fmt.Sprint(port))
			return err
		})
		if err != nil {
			l.notes = append(l.notes, err.Error())
			continue
		}
		restarts = append(restarts, d)
	}
	if len(restarts) > 0 {
		res.RestartMedianMS = median(restarts)
		res.RestartMaxMS = slices.Max(restarts)
	}
	_, _ = l.flm("proxy", "stop", "--port", fmt.Sprint(port))

	detect := func(dataDir string) float64 {
		var xs []float64
		for range 5 {
			d, err := timeIt(func() error {
				cmd := exec.Command(l.flmBin, "--data-dir", dataDir, "engines", "detect", "--fresh")
				cmd.Env = append(cmd.Environ(), hermetic...)
				return cmd.Run()
			})
			if err == nil {
				xs = append(xs, d)
			}
		}
		if len(xs) == 0 {
			return 0
		}
		return median(xs)
	}
	res.DetectNothingMS = detect(l.dir + "/detect-empty")
	four := l.dir + "/detect-four"
	for _, k := range []string{"ollama", "vllm", "lmstudio", "llamacpp"} {
		p := freePort()
		if err := l.start("detect-"+k, l.fakeBin, "--kind", k, "--addr", hostport(p), "--quiet"); err != nil {
			l.notes = append(l.notes, err.Error())
			continue
		}
		_ = waitHTTP(fmt.Sprintf("http://%s/", hostport(p)), 5*time.Second)
		cmd := exec.Command(l.flmBin, "--data-dir", four, "engines", "add", "--kind", k, "--url", "http://"+hostport(p), "--id", k+"-bench")
		cmd.Env = append(cmd.Environ(), hermetic...)
		_ = cmd.Run()
	}
	res.DetectFourFakesMS = detect(four)
	return res
}
