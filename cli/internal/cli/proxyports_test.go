package cli

import (
	"fmt"
	"net"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/unjuno/flm/cli/internal/datadir"
	"github.com/unjuno/flm/cli/internal/proc"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/core/proxyctl/proxyctltest"
)

// The real adapters keep the contracts proxyctl.Service relies on.

func TestProxyPortsProcessesConformance(t *testing.T) {
	proxyctltest.RunProcesses(t, osProcesses{}, func(t *testing.T, port int) int {
		// A shell whose command line reads like a proxy's; "; :" keeps it
		// from exec-ing sleep, so the arguments stay.
		cmd := exec.Command("sh", "-c", "sleep 30; :", "flm", "proxy", "start", "--foreground", "--port", fmt.Sprint(port))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
		// Until exec, the child's command line is still this test's.
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if has, _ := proc.CmdlineHas(pid, "sleep 30; :"); has {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		return pid
	})
}

func TestProxyPortsLauncherConformance(t *testing.T) {
	dir := t.TempDir()
	if err := datadir.Ensure(dir); err != nil {
		t.Fatal(err)
	}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	ok, failing := proxyctl.DefaultConfig(), proxyctl.DefaultConfig()
	ok.Port, failing.Port = freePort(t), held.Addr().(*net.TCPAddr).Port
	proxyctltest.RunLauncher(t, flmLauncher{dataDir: dir, exe: flmBin}, osProcesses{}, ok, failing, flmerr.ProxyPortInUse)
}

func TestProxyPortsProberConformance(t *testing.T) {
	proxyctltest.RunProber(t, httpProber{certsDir: t.TempDir()}, proxyctltest.ServeHealth)
}

func TestProxyPortsControllerConformance(t *testing.T) {
	proxyctltest.RunController(t, httpController{}, proxyctltest.ServeControl, proxyctltest.ServeStalledControl)
}
