package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/plugins"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// cmdCheck implements `wasmgate check FILE`: parse and validate the
// manifest, compile and instantiate every plugin, run describe and
// validate. Exit 0 when all is well, else print every problem and exit 1.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wasmgate check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logLevel := logLevelFlag(fs)
	setUsage(fs, "wasmgate check [--log-level LEVEL] FILE", `Parse and validate the policy manifest FILE, then compile and instantiate each of its
plugins and run their describe and validate exports with their config (docs/manifest.md).
Prints "FILE: ok (N plugins: ...)" and, for each plugin, the engine it runs on and why
(docs/plugins.md, "Engines"), and exits 0, or prints every problem found on stderr,
one per line, and exits 1. Exit 2: bad command line.
`)
	if err := parseFlags(fs, args, stdout); err != nil {
		return flagExit(err)
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "wasmgate check: want one manifest FILE, got %d arguments\nRun 'wasmgate check --help' for usage.\n", fs.NArg())
		return 2
	}
	path := fs.Arg(0)
	logs := newPluginLogs(stderr, *logLevel)
	defer logs.Close()
	ctx := context.Background()
	p, err := loadPolicy(ctx, path, plugins.Options{Logger: logs.Logger()})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer p.Close(ctx)
	names := p.Chain.Plugins()
	noun := "plugins"
	if len(names) == 1 {
		noun = "plugin"
	}
	fmt.Fprintf(stdout, "%s: ok (%d %s", path, len(names), noun)
	if len(names) > 0 {
		fmt.Fprintf(stdout, ": %s", strings.Join(names, ", "))
	}
	fmt.Fprintln(stdout, ")")
	// Which engine runs each plugin, and why (docs/plugins.md#8-engines).
	for _, e := range p.Chain.Engines() {
		fmt.Fprintf(stdout, "  %s: engine %s (%s)\n", e.Plugin, e.Engine, e.Why)
	}
	return 0
}

// openAudit opens the audit destination of --audit: "" none, "-" stderr
// (stdout carries the guest's or decide's own output), else a file
// appended to.
func openAudit(spec string, stderr io.Writer) (*slog.Logger, func(), error) {
	switch spec {
	case "":
		return nil, func() {}, nil
	case "-":
		return slog.New(slog.NewJSONHandler(stderr, nil)), func() {}, nil
	}
	f, err := os.OpenFile(spec, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("--audit: %w", err)
	}
	return slog.New(slog.NewJSONHandler(f, nil)), func() { f.Close() }, nil
}

// cmdDecide implements `wasmgate decide --policy FILE` (docs/manifest.md#wasmgate-decide): JSON
// Lines requests on stdin, one verdict line per input line on stdout. It
// runs one simulated guest through the same network.Default, chain,
// resolver and name binding as `wasmgate run`, over network.Simulated
// instead of real sockets.
func cmdDecide(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wasmgate decide", flag.ContinueOnError)
	fs.SetOutput(stderr)
	policyPath := fs.String("policy", "", "policy manifest `FILE` (required)")
	auditSpec := fs.String("audit", "", "write audit records to `FILE`, or - for stderr")
	logLevel := logLevelFlag(fs)
	setUsage(fs, "wasmgate decide --policy FILE [--audit FILE|-] [--log-level LEVEL] < requests.jsonl", `Read JSON Lines requests on stdin and write one verdict line per request on stdout,
deciding each through the manifest's plugins on a simulated network (docs/manifest.md,
"wasmgate decide"). A bad input line gives {"error": "line N: ..."} and exit status 2.
`)
	if err := parseFlags(fs, args, stdout); err != nil {
		return flagExit(err)
	}
	if *policyPath == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "wasmgate decide: want --policy FILE and no arguments\nRun 'wasmgate decide --help' for usage.")
		return 2
	}
	logs := newPluginLogs(stderr, *logLevel)
	defer logs.Close()
	audit, closeAudit, err := openAudit(*auditSpec, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "wasmgate decide:", err)
		return 2
	}
	defer closeAudit()
	ctx := context.Background()
	p, err := loadPolicy(ctx, *policyPath, plugins.Options{Audit: audit, Logger: logs.Logger()})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer p.Close(ctx)
	// As for run: the log says which policy decided what follows.
	auditStart(ctx, audit, *policyPath, p)

	s := newDecider(p)
	// Per line the command allocates a few hundred bytes (the simulated
	// socket and the request the policy sees) and keeps almost nothing:
	// with the default GC target (4 MB) the collector ran every ~10,000
	// lines and cost about a fifth of the command's CPU. A larger target
	// unless GOGC says otherwise; the live heap stays small. Not larger:
	// first touches of a bigger heap are page faults, which cost more
	// than the collections they save (BENCHMARKS.md, "wasmgate decide").
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(decideGCPercent))
	}
	out := bufio.NewWriterSize(stdout, 64<<10)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	in := &decideInput{r: stdin, out: out}
	if len(p.Manifest.Plugins) == 0 {
		in.clock = &lineClock{}
		s.net.Now = in.clock.now
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	status := 0
	n := 0
	var buf []byte
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		res, err := s.line(ctx, line)
		if err != nil {
			status = 2
			enc.Encode(map[string]string{"error": fmt.Sprintf("line %d: %v", n, err)})
			continue
		}
		buf = appendOutput(buf[:0], res)
		out.Write(buf)
	}
	if err := sc.Err(); err != nil {
		enc.Encode(map[string]string{"error": fmt.Sprintf("line %d: reading input: %v", n+1, err)})
		status = 2
	}
	return status
}

// decideGCPercent is decide's GOGC when the environment sets none.
const decideGCPercent = 200

// recorder sits between Default and the chain and keeps the outcomes of
// the current line, so decide can report which plugin decided and why
// (Default returns only an error). While bypass is set it allows without
// asking: decide uses that to set up the listener an accept line needs.
type recorder struct {
	chain    *plugins.Chain
	bypass   atomic.Bool
	mu       sync.Mutex
	outcomes []recorded
}

type recorded struct {
	op   policy.Op  // of the request (decide reads only these two)
	addr netip.Addr // of the request
	plugins.Outcome
}

func (r *recorder) Decide(ctx context.Context, req *network.Request) (network.Verdict, error) {
	d, err := r.DecideExplain(ctx, req)
	return d.Verdict, err
}

func (r *recorder) DecideExplain(ctx context.Context, req *network.Request) (network.Decision, error) {
	if r.bypass.Load() {
		return network.Decision{Verdict: policy.Allow("setup")}, nil
	}
	o := r.chain.DecideOutcome(ctx, req)
	r.mu.Lock()
	r.outcomes = append(r.outcomes, recorded{req.Op, req.Addr, o})
	r.mu.Unlock()
	return o.Decision, nil
}

func (r *recorder) setBypass(b bool) { r.bypass.Store(b) }

func (r *recorder) take() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	// The next line reuses the array: callers use what they took before
	// they decide the next line.
	o := r.outcomes
	r.outcomes = o[:0]
	return o
}

// decider is one simulated guest.
type decider struct {
	sim *network.Simulated
	net *network.Default
	rec *recorder

	// The socket of the previous line, kept so that `listen` can continue
	// a `bind` (and `accept` a `listen`) as a guest would.
	prev    network.Socket
	prevOp  string
	prevKey string

	out output // the line's result, reused: written out before the next line
	in  input  // the line's request, reused the same way

	jsonOnly bool // tests: decode every line with encoding/json
}

func newDecider(p *plugins.Policy) *decider {
	sim := &network.Simulated{}
	rec := &recorder{chain: p.Chain}
	d := &decider{sim: sim, rec: rec, net: p.Manifest.NewDefault(sim, rec)}
	// Quotas meter a running guest's traffic over time; decide answers
	// what the policy says about each line (docs/manifest.md#wasmgate-decide).
	d.net.SetQuotas(network.Quotas{})
	return d
}

// input is one request line (docs/manifest.md#wasmgate-decide).
type input struct {
	Op    string  `json:"op"`
	Host  *string `json:"host"`
	Proto string  `json:"proto"`
	Addr  *string `json:"addr"`
	Port  *int64  `json:"port"`
	Local *string `json:"local"`

	// What the pointers point to, when decodeInputFast filled them
	// (one allocation per line instead of one per field).
	port              int64
	host, addr, local string
}

// output is one result line; members in the documented order (docs/manifest.md#wasmgate-decide).
type output struct {
	Op      string    `json:"op"`
	Host    *string   `json:"host,omitempty"`
	Proto   string    `json:"proto,omitempty"`
	Addr    *string   `json:"addr,omitempty"`
	Port    *int64    `json:"port,omitempty"`
	Local   *string   `json:"local,omitempty"`
	Verdict string    `json:"verdict"`
	Addrs   *[]string `json:"addrs,omitempty"`
	Dropped *[]string `json:"dropped,omitempty"`
	Plugin  *string   `json:"plugin,omitempty"`
	Reason  string    `json:"reason"`

	plugin string // what Plugin points to, when verdict sets it
}

// parseInput decodes and checks line into *in (which the caller reuses
// from line to line). jsonOnly (tests) skips the fast decoder.
func parseInput(line []byte, in *input, jsonOnly bool) (*input, error) {
	if jsonOnly || !decodeInputFast(line, in) {
		*in = input{}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(in); err != nil {
			return nil, fmt.Errorf("bad JSON: %v", err)
		}
		if dec.More() {
			return nil, errors.New("bad JSON: more than one value on the line")
		}
	}
	need := func(cond bool, msg string) error {
		if !cond {
			return fmt.Errorf("%s: %s", in.Op, msg)
		}
		return nil
	}
	if in.Port != nil && (*in.Port < 0 || *in.Port > 65535) {
		return nil, fmt.Errorf("port %d out of range 0-65535", *in.Port)
	}
	addrPort := in.Addr != nil && in.Port != nil
	var err error
	switch in.Op {
	case "resolve":
		err = errors.Join(need(in.Host != nil, `needs "host"`), need(in.Addr == nil && in.Port == nil && in.Proto == "" && in.Local == nil, `takes only "host"`))
	case "connect", "bind":
		err = errors.Join(need(in.Proto == "tcp" || in.Proto == "udp", `needs "proto": "tcp" or "udp"`), need(addrPort, `needs "addr" and "port"`))
	case "send", "recv":
		err = errors.Join(need(in.Proto == "udp", `needs "proto": "udp"`), need(addrPort, `needs "addr" and "port"`))
	case "listen":
		err = errors.Join(need(in.Proto == "tcp", `needs "proto": "tcp"`), need((in.Addr == nil) == (in.Port == nil), `takes both "addr" and "port" or neither`))
	case "accept":
		err = errors.Join(need(in.Proto == "tcp", `needs "proto": "tcp"`), need(addrPort, `needs "addr" and "port" (the peer)`))
	case "":
		return nil, errors.New(`missing "op"`)
	default:
		return nil, fmt.Errorf("unknown op %q (want resolve, connect, send, bind, listen, accept or recv)", in.Op)
	}
	if err != nil {
		return nil, err
	}
	if in.Op != "resolve" && in.Host != nil {
		return nil, fmt.Errorf(`%s: "host" is only for resolve`, in.Op)
	}
	if in.Local != nil && in.Op != "accept" && in.Op != "recv" {
		return nil, fmt.Errorf(`%s: "local" is only for accept and recv`, in.Op)
	}
	return in, nil
}

// parseAddr parses addr strictly (netip syntax). A zoned address parses: the
// host would see it too, and Default refuses it (EINVAL).
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, fmt.Errorf("bad addr %q: %v", s, err)
	}
	return a, nil
}

func family(a netip.Addr) network.Family {
	if a.Is4() {
		return network.IPv4
	}
	return network.IPv6
}

func protoOf(s string) network.Proto {
	if s == "udp" {
		return network.UDP
	}
	return network.TCP
}

func (s *decider) line(ctx context.Context, line []byte) (*output, error) {
	in, err := parseInput(line, &s.in, s.jsonOnly)
	if err != nil {
		return nil, err
	}
	out := &s.out
	*out = output{Op: in.Op, Host: in.Host, Proto: in.Proto, Addr: in.Addr, Port: in.Port, Local: in.Local}
	var ap netip.AddrPort
	if in.Addr != nil {
		a, err := parseAddr(*in.Addr)
		if err != nil {
			return nil, err
		}
		ap = netip.AddrPortFrom(a, uint16(*in.Port))
	}
	var local netip.AddrPort
	if in.Local != nil {
		local, err = netip.ParseAddrPort(*in.Local)
		if err != nil {
			return nil, fmt.Errorf("bad local %q: %v (want ip:port)", *in.Local, err)
		}
	}
	s.rec.take()
	var key string // what a listen line continues from a bind line
	if in.Op == "bind" || in.Op == "listen" {
		key = in.Proto + " " + ap.String()
	}
	var opErr error
	switch in.Op {
	case "resolve":
		return s.resolve(ctx, in, out), nil
	case "connect":
		var sock network.Socket
		if sock, opErr = s.freshSocket(ctx, in.Proto, ap.Addr()); opErr == nil {
			opErr = sock.Connect(ctx, ap)
		}
	case "send":
		opErr = s.fresh(ctx, in.Proto, ap.Addr(), func(sock network.Socket) error {
			_, err := sock.Send(ctx, [][]byte{[]byte("wasmgate decide")}, ap, 0)
			return err
		})
	case "bind":
		opErr = s.fresh(ctx, in.Proto, ap.Addr(), func(sock network.Socket) error { return sock.Bind(ctx, ap) })
		s.keep("bind", key)
	case "listen":
		if s.prev != nil && s.prevOp == "bind" && s.prevKey == key && in.Addr != nil {
			opErr = s.prev.Listen(ctx, 128)
			s.keep("listen", key)
			break
		}
		fam := network.IPv4
		if in.Addr != nil {
			fam = family(ap.Addr())
		}
		opErr = s.freshFam(ctx, "tcp", fam, func(sock network.Socket) error {
			if in.Addr != nil {
				if err := sock.Bind(ctx, ap); err != nil {
					return err
				}
			}
			return sock.Listen(ctx, 128)
		})
		s.keep("listen", key)
	case "accept":
		opErr = s.accept(ctx, ap, local)
	case "recv":
		opErr = s.recv(ctx, ap, local)
	}
	s.verdict(out, opErr)
	return out, nil
}

// fresh runs op on a new socket of the line's proto and addr's family; the
// socket is closed unless keep is called next.
func (s *decider) fresh(ctx context.Context, proto string, a netip.Addr, op func(network.Socket) error) error {
	sock, err := s.freshSocket(ctx, proto, a)
	if err != nil {
		return err
	}
	return op(sock)
}

// freshSocket is fresh without the operation (a connect line calls it
// directly: no closure to allocate per line).
func (s *decider) freshSocket(ctx context.Context, proto string, a netip.Addr) (network.Socket, error) {
	fam := family(a)
	if a.Is4In6() {
		fam = network.IPv6 // what a guest passing a mapped address uses
	}
	return s.newSocket(ctx, proto, fam)
}

func (s *decider) freshFam(ctx context.Context, proto string, fam network.Family, op func(network.Socket) error) error {
	sock, err := s.newSocket(ctx, proto, fam)
	if err != nil {
		return err
	}
	return op(sock)
}

func (s *decider) newSocket(ctx context.Context, proto string, fam network.Family) (network.Socket, error) {
	s.drop()
	sock, err := s.net.Socket(ctx, protoOf(proto), fam)
	if err != nil {
		return nil, err
	}
	s.prev, s.prevOp, s.prevKey = sock, "", ""
	return sock, nil
}

func (s *decider) keep(op, key string) { s.prevOp, s.prevKey = op, key }

// drop closes the previous line's socket.
func (s *decider) drop() {
	if s.prev != nil {
		s.prev.Close()
		s.prev, s.prevOp, s.prevKey = nil, "", ""
	}
}

// accept simulates a connection from peer to a listener at local (default:
// the wildcard address of the peer's family, an ephemeral port). Setting up
// the listener is not decided (bypass): the line is about the accept.
func (s *decider) accept(ctx context.Context, peer, local netip.AddrPort) error {
	s.drop()
	if !local.IsValid() {
		local = netip.AddrPortFrom(wildcard(peer.Addr()), 0)
	}
	s.rec.setBypass(true)
	ls, err := s.net.Socket(ctx, network.TCP, family(local.Addr()))
	if err == nil {
		if err = ls.Bind(ctx, local); err == nil {
			err = ls.Listen(ctx, 128)
		}
	}
	s.rec.setBypass(false)
	if err != nil {
		if ls != nil {
			ls.Close()
		}
		return fmt.Errorf("setting up the listener at %s: %w", local, err)
	}
	defer ls.Close()
	bound, err := ls.LocalAddr()
	if err != nil {
		return err
	}
	if err := s.sim.Dial(bound, peer); err != nil {
		return err
	}
	c, err := ls.Accept(ctx)
	if err != nil {
		return err
	}
	c.Close()
	return nil
}

// recv simulates a datagram from peer to a UDP socket bound at local
// (default: wildcard of the peer's family, an ephemeral port).
func (s *decider) recv(ctx context.Context, peer, local netip.AddrPort) error {
	s.drop()
	if !local.IsValid() {
		local = netip.AddrPortFrom(wildcard(peer.Addr()), 0)
	}
	s.rec.setBypass(true)
	us, err := s.net.Socket(ctx, network.UDP, family(local.Addr()))
	if err == nil {
		err = us.Bind(ctx, local)
	}
	s.rec.setBypass(false)
	if err != nil {
		if us != nil {
			us.Close()
		}
		return fmt.Errorf("setting up the socket at %s: %w", local, err)
	}
	defer us.Close()
	bound, err := us.LocalAddr()
	if err != nil {
		return err
	}
	if err := s.sim.Deliver(bound, peer, []byte("wasmgate decide")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	_, _, _, err = us.Recv(ctx, [][]byte{buf}, 0)
	return err
}

func wildcard(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// verdict fills out's verdict, plugin and reason from the decisions the
// line caused and the operation's result.
func (s *decider) verdict(out *output, opErr error) {
	recs := s.rec.take()
	out.Plugin = &out.plugin
	if opErr != nil {
		// Declared here, not above: errors.As moves it to the heap, and
		// an allowed line should not pay for that.
		var denied *network.DeniedError
		switch {
		case errors.As(opErr, &denied):
			out.Verdict = "deny"
			out.plugin, out.Reason = denied.Plugin, denied.Reason
			return
		case errors.Is(opErr, syscall.EINVAL) && len(recs) == 0:
			out.Verdict, out.Reason = "deny", "invalid address"
			return
		}
	}
	for _, r := range recs {
		if !r.Allowed() {
			// Denied but invisible to the guest (accept, recv).
			out.Verdict, out.plugin, out.Reason = "deny", r.Plugin, r.Reason
			return
		}
	}
	if len(recs) == 0 {
		out.Verdict = "deny"
		out.Reason = "no decision was made"
		if opErr != nil {
			out.Reason = opErr.Error()
		}
		return
	}
	last := recs[len(recs)-1]
	out.Verdict, out.plugin, out.Reason = "allow", last.Plugin, last.Reason
	for _, r := range recs {
		if r.Audit == "would_deny" {
			out.Verdict, out.plugin, out.Reason = "would_deny", r.Plugin, r.Reason
			break
		}
	}
	if opErr != nil {
		out.Reason += " (allowed, but the operation failed: " + opErr.Error() + ")"
	}
}

func (s *decider) resolve(ctx context.Context, in *input, out *output) *output {
	addrs, err := s.net.ResolveAddresses(ctx, *in.Host)
	recs := s.rec.take()
	got := []string{}
	for _, a := range addrs {
		got = append(got, a.String())
	}
	dropped := []string{}
	out.Addrs, out.Dropped = &got, &dropped
	var lookup *recorded
	for i := range recs {
		r := &recs[i]
		switch r.op {
		case policy.OpDNSLookup:
			lookup = r
		case policy.OpDNSAnswer:
			if !r.Allowed() {
				dropped = append(dropped, r.addr.String())
			}
		}
	}
	plugin := ""
	var denied *network.DeniedError
	switch {
	case errors.As(err, &denied):
		out.Verdict, plugin, out.Reason = "deny", denied.Plugin, denied.Reason
		if lookup != nil && lookup.Allowed() {
			out.Reason = "every answer was denied: " + denied.Reason
		}
	case err != nil:
		out.Verdict, out.Reason = "deny", err.Error()
		if errors.Is(err, syscall.EINVAL) {
			out.Reason = "invalid name: " + err.Error()
		}
		// The lookup failed after the policy allowed it: no plugin
		// denied anything, so none is named as the decider.
		if lookup != nil && lookup.Allowed() && lookup.Plugin != "" {
			out.Reason += " (the lookup was allowed by " + lookup.Plugin + ")"
		}
	case len(got) == 0:
		out.Verdict, out.Reason = "deny", "no address"
	case lookup == nil:
		out.Verdict, out.Reason = "allow", "an IP literal is not a name: no lookup"
	default:
		out.Verdict, plugin, out.Reason = "allow", lookup.Plugin, lookup.Reason
		// Report mode: enforced, the lookup or an answer would be denied.
		for _, r := range recs {
			if r.Audit == "would_deny" {
				out.Verdict, plugin, out.Reason = "would_deny", r.Plugin, r.Reason
				break
			}
		}
	}
	if plugin != "" {
		out.Plugin = &plugin
	}
	return out
}
