//go:build !wasip1

package socket

import (
	"context"
	"errors"
	"testing"
)

// Outside wasip1 every entry point fails cleanly instead of pretending.
func TestUnsupported(t *testing.T) {
	ctx := context.Background()
	if _, err := Dial("tcp", "127.0.0.1:1"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Dial: %v", err)
	}
	if _, err := new(Dialer).DialContext(ctx, "tcp", "127.0.0.1:1"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("DialContext: %v", err)
	}
	if _, err := Listen("tcp", "127.0.0.1:0"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Listen: %v", err)
	}
	if _, err := ListenPacket("udp", "127.0.0.1:0"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ListenPacket: %v", err)
	}
	if _, err := new(Resolver).LookupHost(ctx, "localhost"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("LookupHost: %v", err)
	}
	if _, err := FileListener(nil); !errors.Is(err, ErrUnsupported) {
		t.Errorf("FileListener: %v", err)
	}
}
