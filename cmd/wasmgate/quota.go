package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"syscall"

	"github.com/wasmgate/wasmgate/metrics"
	"github.com/wasmgate/wasmgate/network"
)

// onQuota is the Default's OnQuota: an audit record (message "quota") and
// the metric for each refusal, and a line on stderr the first time each
// quota refuses (docs/operations.md#quotas).
func onQuota(guest string, audit *slog.Logger, mets *metrics.Metrics, stderr io.Writer) func(network.QuotaRefusal) {
	var told sync.Map // quota -> struct{}
	return func(q network.QuotaRefusal) {
		reason := "quota " + q.Quota + " exceeded"
		if _, seen := told.LoadOrStore(q.Quota, struct{}{}); !seen {
			what := string(q.Op)
			switch {
			case q.Name != "":
				what += " " + q.Name
			case q.Addr.IsValid():
				what += " " + q.Addr.String()
			}
			fmt.Fprintf(stderr, "wasmgate: %s (%s); the guest %s; further refusals go to the audit log and metrics only\n",
				reason, what, quotaOutcome(q.Errno))
		}
		if mets != nil {
			mets.QuotaRefusal(q.Quota)
		}
		if audit == nil {
			return
		}
		attrs := []slog.Attr{
			slog.String("guest", guest),
			slog.String("op", string(q.Op)),
			slog.String("proto", q.Proto),
		}
		addr, port := "", 0
		if q.Addr.IsValid() {
			addr, port = q.Addr.Addr().String(), int(q.Addr.Port())
		}
		attrs = append(attrs, slog.String("addr", addr), slog.Int("port", port))
		if q.Name != "" {
			attrs = append(attrs, slog.String("name", q.Name))
		}
		if q.Local.IsValid() {
			attrs = append(attrs, slog.String("local", q.Local.String()))
		}
		errno := ""
		if q.Errno != 0 {
			errno = errnoName(q.Errno)
		}
		attrs = append(attrs,
			slog.String("quota", q.Quota),
			slog.String("reason", reason),
			slog.String("errno", errno),
		)
		audit.LogAttrs(context.Background(), slog.LevelInfo, "quota", attrs...)
	}
}

// quotaOutcome says what the guest saw.
func quotaOutcome(e syscall.Errno) string {
	if e == 0 {
		return "saw nothing (the pending connection was reset)"
	}
	return "gets " + errnoName(e)
}
