package testenv

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// RegistryBinary is Debian's docker-registry package (the CNCF
// distribution registry), which .ci/run installs.
const RegistryBinary = "/usr/bin/docker-registry"

var registry struct {
	once    sync.Once
	cmd     *exec.Cmd
	dir     string
	addr    string
	err     error
	missing bool
	exited  chan error // receives cmd.Wait's result
}

// Registry returns the "127.0.0.1:PORT" of an OCI registry (RegistryBinary)
// serving plain HTTP on loopback, and its storage directory (for tests that
// tamper with what it serves). One registry is started per test process, on
// the first call; TestMain must call StopRegistry after m.Run. Without the
// binary the test ends with Missing.
func Registry(t testing.TB) (addr, storage string) {
	t.Helper()
	registry.once.Do(startRegistry)
	if registry.missing {
		Missing(t, "the OCI registry "+RegistryBinary+" (apt-get install docker-registry)", registry.err)
	}
	if registry.err != nil {
		t.Fatalf("starting %s: %v", RegistryBinary, registry.err)
	}
	return registry.addr, filepath.Join(registry.dir, "storage")
}

func startRegistry() {
	r := &registry
	if _, err := exec.LookPath(RegistryBinary); err != nil {
		r.missing, r.err = true, err
		return
	}
	r.dir, r.err = os.MkdirTemp("", "wasmgate-registry-")
	if r.err != nil {
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.err = err
		return
	}
	r.addr = l.Addr().String()
	l.Close()
	// No blob descriptor cache: what is on disk is what it serves.
	config := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: wasmgate-tests
`, filepath.Join(r.dir, "storage"), r.addr)
	cfgPath := filepath.Join(r.dir, "config.yml")
	if r.err = os.WriteFile(cfgPath, []byte(config), 0o600); r.err != nil {
		return
	}
	r.cmd = exec.Command(RegistryBinary, "serve", cfgPath)
	r.cmd.Stderr = &logTail{}
	setDeathSignal(r.cmd)
	if r.err = r.cmd.Start(); r.err != nil {
		return
	}
	exited := make(chan error, 1)
	go func() { exited <- r.cmd.Wait() }()
	r.exited = exited
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			// E.g. the port was taken between our probe and its bind.
			r.err = fmt.Errorf("exited before it was ready: %v; stderr: %s", err, r.cmd.Stderr)
			r.cmd = nil
			return
		default:
		}
		resp, err := http.Get("http://" + r.addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			r.err = fmt.Errorf("not ready on %s after 15s: %v; stderr: %s", r.addr, err, r.cmd.Stderr)
			StopRegistry()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StopRegistry stops the registry Registry started, if any, and removes
// its storage.
func StopRegistry() {
	r := &registry
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		<-r.exited
		r.cmd = nil
	}
	if r.dir != "" {
		os.RemoveAll(r.dir)
	}
}

// logTail keeps the last 4 KiB written to it.
type logTail struct {
	mu  sync.Mutex
	buf []byte
}

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > 4096 {
		l.buf = l.buf[len(l.buf)-4096:]
	}
	return len(p), nil
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}
