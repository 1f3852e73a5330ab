package plugins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	extism "github.com/extism/go-sdk"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/sdk/policy/special"
)

// A plugin's http_request on the go-sdk engine (docs/plugins.md#http_request).
// go-sdk's own sends every request through http.DefaultClient after a
// glob match on the URL's host name: no way to give it a dialer, so a name
// in allowed_hosts could resolve to 169.254.169.254 or 127.0.0.1. The
// import is therefore redirected (redirectImports) to this implementation,
// which takes the request in go-sdk's format and answers in it
// (http_status_code and http_headers stay go-sdk's and read what it
// sets), but decides every connection itself:
//
//   - the URL must be http or https, its host one of the plugin's
//     allowed_hosts (canonicalised as network.Default canonicalises names
//     and addresses);
//   - at connect time the host is resolved (the manifest's [dns]), every
//     address is canonicalised and classified by sdk/policy/special, and
//     only addresses in no special range, or only in ranges allow_special
//     lists, are dialled, by address: no second resolution, no DNS
//     rebinding; redirects go through the same checks;
//   - no proxy from the environment, no connection reuse (each request is
//     checked at its own connect), the response body capped;
//   - every request writes one audit record ("plugin_http").
//
// A refused or failed request traps, so the decision fails closed.

// httpModule is the import module http_request is redirected to.
const httpModule = "wasmgate:host/http"

// Limits of a plugin's HTTP requests.
const (
	maxHTTPResponse  = 1 << 20  // bytes of response body
	maxHTTPHeaders   = 64 << 10 // bytes of response headers
	maxHTTPRedirects = 5
	maxHTTPRequest   = 64 << 10 // bytes of the request's JSON (url, method, headers)
)

// httpGate is one plugin's HTTP access.
type httpGate struct {
	plugin   string
	hosts    []string // canonical names, "*.suffix" patterns, canonical addresses
	special  special.Category
	resolver network.Resolver
	audit    *slog.Logger
	client   *http.Client
}

func newHTTPGate(plugin string, hosts []string, allow special.Category, r network.Resolver, audit *slog.Logger) *httpGate {
	g := &httpGate{plugin: plugin, hosts: hosts, special: allow, resolver: r, audit: audit}
	g.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            g.dial,
			DisableKeepAlives:      true,
			MaxResponseHeaderBytes: maxHTTPHeaders,
			TLSHandshakeTimeout:    10 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxHTTPRedirects {
				return fmt.Errorf("more than %d redirects", maxHTTPRedirects)
			}
			_, err := g.checkURL(req.URL)
			return err
		},
	}
	return g
}

// hostAllowed reports whether the URL host h (as url.Hostname gives it)
// is in allowed_hosts; it returns the canonical form.
func (g *httpGate) hostAllowed(h string) (string, bool) {
	var c string
	if a, err := netip.ParseAddr(h); err == nil {
		ca, err := network.CanonicalAddr(a)
		if err != nil {
			return h, false
		}
		c = ca.String()
	} else {
		cn, err := network.CanonicalName(h)
		if err != nil {
			return h, false
		}
		c = cn
	}
	for _, e := range g.hosts {
		if e == c || strings.HasPrefix(e, "*.") && strings.HasSuffix(c, e[1:]) && !network.IsIPLiteral(c) {
			return c, true
		}
	}
	return c, false
}

func (g *httpGate) checkURL(u *url.URL) (string, error) {
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	h, ok := g.hostAllowed(u.Hostname())
	if !ok {
		return h, fmt.Errorf("host %q is not in the plugin's allowed_hosts", u.Hostname())
	}
	return h, nil
}

// dialTCP dials a checked address; tests replace it with a dialer that
// refuses anything off loopback.
var dialTCP = (&net.Dialer{}).DialContext

type dialKey struct{}

// dialInfo carries what the dialer did to the request's audit record.
type dialInfo struct{ addr string }

// dial resolves addr's host, keeps the addresses the special-range rules
// allow, and dials those addresses (not the name) in order.
func (g *httpGate) dial(ctx context.Context, netw, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port %q", portStr)
	}
	h, ok := g.hostAllowed(host)
	if !ok {
		return nil, fmt.Errorf("host %q is not in the plugin's allowed_hosts", host)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(h); err == nil {
		addrs = []netip.Addr{a}
	} else {
		answers, err := g.resolver.Lookup(ctx, h)
		if err != nil {
			return nil, fmt.Errorf("resolving %s: %v", h, err)
		}
		for _, an := range answers {
			if a, err := network.CanonicalAddr(an.Addr); err == nil {
				addrs = append(addrs, a)
			}
		}
	}
	var refused []string
	var lastErr error
	for _, a := range addrs {
		if c := special.Classify(a); c&^g.special != 0 {
			refused = append(refused, fmt.Sprintf("%s (%s)", a, c))
			continue
		}
		target := netip.AddrPortFrom(a, uint16(port)).String()
		if di, _ := ctx.Value(dialKey{}).(*dialInfo); di != nil {
			di.addr = target
		}
		c, err := dialTCP(ctx, "tcp", target)
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	switch {
	case lastErr != nil:
		return nil, lastErr
	case len(refused) > 0:
		return nil, fmt.Errorf("%s resolves only to refused addresses: %s (allow_special does not list their ranges)", h, strings.Join(refused, ", "))
	}
	return nil, fmt.Errorf("%s has no address", h)
}

// hostFunction is http_request for go-sdk, in httpModule.
func (g *httpGate) hostFunction() extism.HostFunction {
	f := extism.NewHostFunctionWithStack("http_request", g.call,
		[]extism.ValueType{extism.ValueTypeI64, extism.ValueTypeI64}, []extism.ValueType{extism.ValueTypeI64})
	f.SetNamespace(httpModule)
	return f
}

// call is http_request(request, body) -> response body: go-sdk's
// behaviour and format, wasmgate's checks. Any failure traps.
func (g *httpGate) call(ctx context.Context, cp *extism.CurrentPlugin, stack []uint64) {
	p, _ := ctx.Value(extism.PluginCtxKey("plugin")).(*extism.Plugin)
	if p == nil {
		panic(errors.New("http_request: outside a plugin call"))
	}
	p.LastStatusCode = 0
	clear(p.LastResponseHeaders)
	start := time.Now()
	rec := httpRecord{method: "GET"}
	status, n, err := g.do(ctx, cp, p, stack, &rec)
	g.record(ctx, &rec, status, n, err, time.Since(start))
	if err != nil {
		panic(fmt.Errorf("http_request: %v", err))
	}
}

type httpRecord struct {
	method, url, addr string
}

func (g *httpGate) do(ctx context.Context, cp *extism.CurrentPlugin, p *extism.Plugin, stack []uint64, rec *httpRecord) (int, int, error) {
	n, err := cp.Length(stack[0])
	if err != nil || n > maxHTTPRequest {
		return 0, 0, fmt.Errorf("request of %d bytes exceeds %d or is unreadable", n, maxHTTPRequest)
	}
	raw, err := cp.ReadBytes(stack[0])
	if err != nil {
		return 0, 0, fmt.Errorf("reading the request: %v", err)
	}
	_ = cp.Free(stack[0])
	var req struct {
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
		Method  string            `json:"method"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return 0, 0, fmt.Errorf("invalid request: %v", err)
	}
	if req.Method != "" {
		rec.method = strings.ToUpper(req.Method)
	}
	u, err := url.Parse(req.URL)
	if err != nil {
		rec.url = policySafe(req.URL)
		return 0, 0, fmt.Errorf("invalid url: %v", err)
	}
	rec.url = redactURL(u)
	if _, err := g.checkURL(u); err != nil {
		return 0, 0, err
	}
	var body io.Reader
	if stack[1] != 0 {
		b, err := cp.ReadBytes(stack[1])
		if err != nil {
			return 0, 0, fmt.Errorf("reading the body: %v", err)
		}
		_ = cp.Free(stack[1])
		body = strings.NewReader(string(b))
	}
	di := &dialInfo{}
	hr, err := http.NewRequestWithContext(context.WithValue(ctx, dialKey{}, di), rec.method, u.String(), body)
	if err != nil {
		return 0, 0, err
	}
	for k, v := range req.Headers {
		hr.Header.Set(k, v)
	}
	resp, err := g.client.Do(hr)
	rec.addr = di.addr
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPResponse+1))
	if err != nil {
		return resp.StatusCode, 0, fmt.Errorf("reading the response: %v", err)
	}
	if len(data) > maxHTTPResponse {
		return resp.StatusCode, len(data), fmt.Errorf("response body exceeds %d bytes", maxHTTPResponse)
	}
	p.LastStatusCode = resp.StatusCode
	if p.LastResponseHeaders != nil {
		for k, v := range resp.Header {
			p.LastResponseHeaders[strings.ToLower(k)] = strings.Join(v, ",")
		}
	}
	stack[0] = 0
	if len(data) > 0 {
		off, err := cp.WriteBytes(data)
		if err != nil {
			return resp.StatusCode, len(data), fmt.Errorf("response does not fit plugin memory: %v", err)
		}
		stack[0] = off
	}
	return resp.StatusCode, len(data), nil
}

// record writes the request's audit record (docs/manifest.md#audit-records).
func (g *httpGate) record(ctx context.Context, rec *httpRecord, status, n int, err error, d time.Duration) {
	if g.audit == nil {
		return
	}
	verdict, reason := "allow", ""
	if err != nil {
		verdict, reason = "deny", policySafe(err.Error())
	}
	g.audit.LogAttrs(ctx, slog.LevelInfo, "plugin_http",
		slog.String("plugin", g.plugin),
		slog.String("method", policySafe(rec.method)),
		slog.String("url", rec.url),
		slog.String("addr", rec.addr),
		slog.String("verdict", verdict),
		slog.String("reason", reason),
		slog.Int("status", status),
		slog.Int("bytes", n),
		slog.Int64("duration_us", d.Microseconds()),
	)
}

// redactURL keeps scheme, host and path: user info and the query may hold
// credentials.
func redactURL(u *url.URL) string {
	c := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return policySafe(c.String())
}

func policySafe(s string) string {
	if len(s) > 512 {
		s = s[:512]
	}
	return strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s), "?")
}
