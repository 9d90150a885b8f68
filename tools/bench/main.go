// Command bench measures FLM's proxy side by side with a direct connection
// to the engine, a bare httputil.ReverseProxy and nginx, on this machine, in
// interleaved rounds (docs/PERFORMANCE.md).
//
//	go run ./tools/bench --scenario all --short --out report.json
//
// Every component runs in its own process: the fake engines, the bare
// proxy, nginx, and `flm proxy start` with the full security chain (key
// auth, a matching IP allowlist, rate limits high enough not to bite,
// audit). Load generator, proxies and engines share the machine's cores, so
// only differences and ratios between targets of the same run mean much.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

type options struct {
	scenario string
	short    bool
	out      string
	md       string
	keep     bool
}

func main() {
	role := flag.String("role", "", "internal: run as a helper process (mock, bare)")
	listen := flag.String("listen", "", "internal: helper listen address")
	target := flag.String("target", "", "internal: bare proxy target")
	var o options
	flag.StringVar(&o.scenario, "scenario", "all", "all, or a comma list of: overhead, throughput, streaming, families, load, lifecycle, egress")
	flag.BoolVar(&o.short, "short", false, "short variant (about 5 minutes in all)")
	flag.StringVar(&o.out, "out", "report.json", "JSON report path")
	flag.StringVar(&o.md, "md", "", "markdown report path (default: the JSON path with .md)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, data dir)")
	flag.Parse()
	if *role != "" {
		if err := runRole(*role, *listen, *target); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		return
	}
	if o.md == "" {
		o.md = strings.TrimSuffix(o.out, filepath.Ext(o.out)) + ".md"
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// Report is the JSON report.
type Report struct {
	Started  time.Time          `json:"started"`
	Duration string             `json:"duration"`
	Short    bool               `json:"short"`
	Machine  Machine            `json:"machine"`
	Command  string             `json:"command"`
	Overhead []OverheadRow      `json:"overhead,omitempty"`
	Through  []ThroughputRow    `json:"throughput,omitempty"`
	Stream   *StreamResult      `json:"streaming,omitempty"`
	Families *FamiliesResult    `json:"families,omitempty"`
	Load     *LoadResult        `json:"load,omitempty"`
	Life     *LifecycleResult   `json:"lifecycle,omitempty"`
	Egress   *EgressResult      `json:"egress,omitempty"`
	Memory   map[string]float64 `json:"memory_mb,omitempty"`
	Notes    []string           `json:"notes,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs   int    `json:"cpus"`
	Model  string `json:"cpu_model"`
	Go     string `json:"go"`
	OS     string `json:"os"`
	Kernel string `json:"kernel"`
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				m.Model = strings.TrimSpace(l[strings.Index(l, ":")+1:])
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func run(o options) error {
	start := time.Now()
	rep := &Report{Started: start.UTC(), Short: o.short, Machine: machine(), Command: "go run ./tools/bench " + strings.Join(os.Args[1:], " "), Memory: map[string]float64{}}
	want := func(s string) bool { return o.scenario == "all" || strings.Contains(","+o.scenario+",", ","+s+",") }
	lab, err := newLab(o.keep)
	if err != nil {
		return err
	}
	defer lab.close()
	logf("lab ready in %v (%s)", time.Since(start).Round(time.Millisecond), lab.dir)
	rep.Memory["flm_idle_rss"] = lab.flmRSS()
	if want("overhead") {
		rep.Overhead = overhead(lab, o.short)
		rep.Memory["flm_rss_after_overhead"] = lab.flmRSS()
	}
	if want("throughput") {
		rep.Through = throughput(lab, o.short)
		rep.Memory["flm_rss_after_throughput"] = lab.flmRSS()
	}
	if want("streaming") {
		rep.Stream = streaming(lab, o.short)
		rep.Memory["flm_rss_max_1000_streams"] = rep.Stream.Concurrent.MaxRSSMB
	}
	if want("families") {
		rep.Families = families(lab, o.short)
		rep.Memory["flm_rss_after_families"] = lab.flmRSS()
	}
	if want("load") {
		rep.Load = planLoad(lab, o.short)
	}
	if want("lifecycle") {
		rep.Life = lifecycle(lab, o.short)
	}
	if want("egress") {
		if rep.Egress, err = egressScenario(lab, o.short); err != nil {
			lab.notes = append(lab.notes, "egress scenario missing: "+err.Error())
		}
	}
	rep.Notes = append(rep.Notes, lab.notes...)
	rep.Duration = time.Since(start).Round(time.Second).String()
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	md := markdown(rep)
	if err := os.WriteFile(o.md, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	logf("wrote %s and %s in %s", o.out, o.md, rep.Duration)
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
