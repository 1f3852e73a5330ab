package main

import (
	"net/netip"
	"testing"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

func TestDecide(t *testing.T) {
	policy.SetConfig([]byte(`{"hosts": ["*.example.test"]}`))
	tests := []struct {
		port  uint16
		names []string
		want  policy.Action
	}{
		{443, []string{"api.example.test"}, policy.ActionAllow},
		{80, []string{"api.example.test"}, policy.ActionDeny},
		{443, []string{"example.test"}, policy.ActionAbstain},
		{443, nil, policy.ActionAbstain},
	}
	for _, tt := range tests {
		v := policy.Invoke(policy.Request{
			Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("192.0.2.1"),
			Port: tt.port, Names: tt.names,
		})
		if v.Verdict != tt.want {
			t.Errorf("port %d names %v: got %+v, want %s", tt.port, tt.names, v, tt.want)
		}
	}
}
