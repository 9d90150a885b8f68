package main

import (
	"fmt"
	"strings"
)

func markdown(r *Report) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## Bench run %s (%s, short=%v)\n\n", r.Started.Format("2006-01-02 15:04 UTC"), r.Duration, r.Short)
	p("Machine: %d CPUs, %s, %s, %s, kernel %s. Command: `%s`.\n\n", r.Machine.CPUs, r.Machine.Model, r.Machine.Go, r.Machine.OS, r.Machine.Kernel, r.Command)
	if len(r.Overhead) > 0 {
		p("### Overhead (open loop, non-streaming chat; ms)\n\n| rate | target | p50 | p90 | p99 | max | added p50 | added p99 | errors |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, o := range r.Overhead {
			p("| %d | %s | %.3f | %.3f | %.3f | %.3f | %+.3f | %+.3f | %.2f%% |\n", o.Rate, o.Target, o.Latency.P50, o.Latency.P90, o.Latency.P99, o.Latency.Max, o.AddedP50, o.AddedP99, o.ErrorRate*100)
		}
		p("\n")
	}
	if len(r.Through) > 0 {
		p("### Throughput (closed loop)\n\n| target | concurrency | req/s | × bare Go proxy | × nginx | errors |\n|---|---|---|---|---|---|\n")
		for _, t := range r.Through {
			p("| %s | %d | %.0f | %.2f | %.2f | %d |\n", t.Target, t.Concurrency, t.ReqPerSec, t.VsBare, t.VsNginx, t.Errors)
		}
		p("\n")
	}
	if s := r.Stream; s != nil {
		p("### Streaming (engine: TTFT 20 ms, 200 chunks/s; ms)\n\n| target | TTFT p50 | TTFT p99 | gap p50 | gap p99 | gap max | chunks/stream |\n|---|---|---|---|---|---|---|\n")
		for _, t := range []string{"direct", "flm"} {
			p("| %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.1f |\n", t, s.TTFT[t].P50, s.TTFT[t].P99, s.Gaps[t].P50, s.Gaps[t].P99, s.Gaps[t].Max, s.Chunks[t])
		}
		c := s.Concurrent
		p("\nTTFT added at p99: %+.3f ms. %d concurrent streams through FLM for %.0f s: %d completed, %d errors, FLM max RSS %.1f MB, goroutines %d before / %d peak / %d after (%.0f s after the load).\n\n",
			s.AddedTTFT, c.Streams, c.Seconds, c.Completed, c.Errors, c.MaxRSSMB, c.GoroutinesBefore, c.GoroutinesPeak, c.GoroutinesAfter, c.SettleSeconds)
	}
	if f := r.Families; f != nil && len(f.Rows) > 0 {
		p("### API families (engine: %s; %d interleaved rounds; ms)\n\n", f.Engine, f.Rounds)
		p("Whole answers:\n\n| target | path | p50 | p90 | p99 | added p50 | added p99 | over FLM OpenAI p50 | errors |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, w := range f.Rows {
			if !w.Stream {
				p("| %s | %s | %.3f | %.3f | %.3f | %+.3f | %+.3f | %s | %d |\n", w.Target, w.Path, w.Latency.P50, w.Latency.P90, w.Latency.P99, w.AddedP50, w.AddedP99, overOpenAI(w), w.Errors)
			}
		}
		p("\nStreams (first event = first non-empty line; end = the family's last event):\n\n| target | path | first p50 | first p99 | added first p50 | added first p99 | end p50 | end p99 | added end p50 | added end p99 | over FLM OpenAI p50 | events | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, s := range f.Rows {
			if s.Stream && s.First != nil {
				p("| %s | %s | %.3f | %.3f | %+.3f | %+.3f | %.3f | %.3f | %+.3f | %+.3f | %s | %.1f | %d |\n", s.Target, s.Path, s.First.P50, s.First.P99, s.AddedFirst50, s.AddedFirst99, s.Latency.P50, s.Latency.P99, s.AddedP50, s.AddedP99, overOpenAI(s), s.Events, s.Errors)
			}
		}
		p("\n%s.\n\n", f.Checked)
	}
	if l := r.Load; l != nil {
		p("### Plan's load test (100 req/min each, chat + streaming chat + embeddings, %.0f min)\n\n| target | requests | p50 ms | p95 ms | errors |\n|---|---|---|---|---|\n", l.Minutes)
		for _, t := range []string{"direct", "flm"} {
			p("| %s | %d | %.3f | %.3f | %.2f%% |\n", t, l.N[t], l.P50[t], l.P95[t], l.Errors[t]*100)
		}
		p("\n")
	}
	if r.Egress != nil {
		b.WriteString(egressMarkdown(r.Egress))
	}
	if l := r.Life; l != nil {
		p("### Lifecycle (ms)\n\n| start → healthy | restart median | restart max | detect, nothing running | detect, four fakes |\n|---|---|---|---|---|\n| %.1f | %.1f | %.1f | %.1f | %.1f |\n\n",
			l.StartToHealthyMS, l.RestartMedianMS, l.RestartMaxMS, l.DetectNothingMS, l.DetectFourFakesMS)
	}
	if len(r.Memory) > 0 {
		p("### Memory (FLM proxy RSS, MB)\n\n")
		for _, k := range []string{"flm_idle_rss", "flm_rss_after_overhead", "flm_rss_after_throughput", "flm_rss_max_1000_streams", "flm_rss_after_families"} {
			if v, ok := r.Memory[k]; ok {
				p("- %s: %.1f\n", k, v)
			}
		}
		p("\n")
	}
	for _, n := range r.Notes {
		p("> note: %s\n", n)
	}
	return b.String()
}

// overOpenAI is a row's p50 over FLM's own OpenAI row: what translation
// adds ("–" for the rows it means nothing for).
func overOpenAI(r FamilyRow) string {
	if r.Target == "direct" || r.Target == "flm openai" {
		return "–"
	}
	return fmt.Sprintf("%+.3f", r.OverOpenAI)
}
