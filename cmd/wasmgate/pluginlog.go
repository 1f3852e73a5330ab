package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Plugin log lines are rate-limited per plugin (docs/plugins.md, "Logs"):
// a burst of logBurst lines, then logRate lines per second. Lines over the
// limit are dropped and counted; the count is written before the plugin's
// next line that gets through, and when the command ends.
const (
	logBurst = 50
	logRate  = 10.0
)

// pluginLogs writes the plugins' log_* calls and their stdout/stderr (which
// the kernel hands to plugins.Options.Logger) on the command's stderr, one
// line each, naming the plugin.
type pluginLogs struct {
	mu      sync.Mutex
	w       io.Writer
	level   slog.Level
	now     func() time.Time
	buckets map[string]*logBucket
}

type logBucket struct {
	tokens  float64
	last    time.Time
	dropped int
}

func newPluginLogs(w io.Writer, level slog.Level) *pluginLogs {
	return &pluginLogs{w: w, level: level, now: time.Now, buckets: map[string]*logBucket{}}
}

// Logger is the logger to give plugins.Options.
func (p *pluginLogs) Logger() *slog.Logger { return slog.New(&logHandler{p: p}) }

// Close reports the lines still counted as dropped.
func (p *pluginLogs) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, b := range p.buckets {
		p.flushDropped(name, b)
	}
}

func (p *pluginLogs) flushDropped(name string, b *logBucket) {
	if b.dropped > 0 {
		fmt.Fprintf(p.w, "wasmgate: plugin %q: %d log lines dropped (over %d per second)\n", name, b.dropped, int(logRate))
		b.dropped = 0
	}
}

func (p *pluginLogs) write(level slog.Level, plugin, text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		b := p.buckets[plugin]
		now := p.now()
		if b == nil {
			b = &logBucket{tokens: logBurst, last: now}
			p.buckets[plugin] = b
		}
		b.tokens = min(logBurst, b.tokens+now.Sub(b.last).Seconds()*logRate)
		b.last = now
		if b.tokens < 1 {
			b.dropped++
			continue
		}
		b.tokens--
		p.flushDropped(plugin, b)
		fmt.Fprintf(p.w, "wasmgate: plugin %q: %s: %s\n", plugin, levelName(level), clean(line))
	}
}

func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}

// clean replaces control characters (escape sequences a plugin could send
// to a terminal) with '?'.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\t' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

type logHandler struct {
	p     *pluginLogs
	attrs []slog.Attr
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.p.level }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	plugin, text := "", r.Message
	var extra []string
	each := func(a slog.Attr) bool {
		switch a.Key {
		case "plugin":
			plugin = a.Value.String()
		case "msg", "text":
			text = a.Value.String()
		default:
			extra = append(extra, a.Key+"="+a.Value.String())
		}
		return true
	}
	for _, a := range h.attrs {
		each(a)
	}
	r.Attrs(each)
	if len(extra) > 0 {
		text += " " + strings.Join(extra, " ")
	}
	h.p.write(r.Level, plugin, text)
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{p: h.p, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *logHandler) WithGroup(string) slog.Handler { return h }
