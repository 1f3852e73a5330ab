package testenv

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// ServeDNS starts a DNS server on 127.0.0.1 (UDP) for the test and returns
// its "ip:port". For every query, answer gets the question and the reply
// (already set up by SetReply) to fill in; the reply is then sent. The
// server is running when ServeDNS returns and stops with the test.
func ServeDNS(t testing.TB, answer func(q dns.Question, m *dns.Msg)) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(q)
			if len(q.Question) > 0 {
				answer(q.Question[0], m)
			}
			w.WriteMsg(m)
		})}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}
