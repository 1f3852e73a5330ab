package host

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/network"
)

// TestOnListenReportsBoundAddress: every WithListen socket is reported
// once bound, in order, with the port the system chose for port 0 and the
// guest fd it gets (stdio 0-2, the directory 3, the virtual /etc 4, then
// the listeners), before the guest starts; a connection made then is
// accepted by the kernel and waits for the guest.
func TestOnListenReportsBoundAddress(t *testing.T) {
	var got []Listening
	cfg := NewConfig().WithArgs("hello").
		WithNetwork(&network.Default{Policy: network.PolicyFunc(allowLoopback)}).
		WithDir(t.TempDir(), "/data", false).
		WithListen("127.0.0.1:0").
		WithListen("[::1]:0").
		WithOnListen(func(l Listening) error {
			got = append(got, l)
			c, err := net.DialTimeout("tcp", l.Bound.String(), 5*time.Second)
			if err != nil {
				t.Errorf("dial the reported %s: %v", l.Bound, err)
				return nil
			}
			return c.Close()
		})
	code, _, errOut, err := hostRunGuest(t, hostGoGuest(t, "hello"), cfg, time.Minute)
	if err != nil || code != 0 {
		t.Fatalf("exit %d, %v; stderr %s", code, err, errOut)
	}
	if len(got) != 2 {
		t.Fatalf("reported %d listeners, want 2: %v", len(got), got)
	}
	for i, want := range []struct {
		addr string
		ip   string
		fd   int32
	}{{"127.0.0.1:0", "127.0.0.1", 5}, {"[::1]:0", "::1", 6}} {
		l := got[i]
		if l.Addr != want.addr || l.Bound.Addr().String() != want.ip || l.Bound.Port() == 0 || l.Fd != want.fd {
			t.Errorf("listener %d: %+v; want %s bound on %s with a port, fd %d", i, l, want.addr, want.ip, want.fd)
		}
	}
}

// TestOnListenErrorStopsRun: an error from the WithOnListen callback stops
// the run before the guest starts, and Run returns it.
func TestOnListenErrorStopsRun(t *testing.T) {
	boom := errors.New("boom")
	cfg := NewConfig().WithArgs("hello", "ran").
		WithNetwork(&network.Default{Policy: network.PolicyFunc(allowLoopback)}).
		WithListen("127.0.0.1:0").
		WithOnListen(func(Listening) error { return boom })
	code, out, _, err := hostRunGuest(t, hostGoGuest(t, "hello"), cfg, time.Minute)
	if !errors.Is(err, boom) || code == 0 || out != "" {
		t.Fatalf("exit %d, %v, stdout %q; want boom and no guest output", code, err, out)
	}
}
