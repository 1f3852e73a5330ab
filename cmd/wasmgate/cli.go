package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// errUsage is a command-line error already reported on stderr (exit 2).
var errUsage = errors.New("usage")

// parseFlags parses args with fs. `-h`/`--help` print fs.Usage on stdout
// and return flag.ErrHelp (exit 0); any other problem is printed once on
// stderr, prefixed with the command's name and followed by a pointer to
// --help, and returns errUsage (exit 2). fs.Usage must write to
// fs.Output(), which parseFlags points at the right stream.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	stderr := fs.Output()
	fs.SetOutput(io.Discard) // the flag package's own messages: reported below
	err := fs.Parse(args)
	switch {
	case err == nil:
		fs.SetOutput(stderr)
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		fs.SetOutput(stderr)
		return flag.ErrHelp
	}
	fs.SetOutput(stderr)
	fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", fs.Name(), err, fs.Name())
	return errUsage
}

// flagExit is the exit code for a parseFlags error.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// printFlags prints fs's flags in the two-dash form the README uses
// (flag.PrintDefaults prints one dash).
func printFlags(fs *flag.FlagSet) {
	w := fs.Output()
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		s := "  --" + f.Name
		if name != "" {
			s += " " + name
		}
		fmt.Fprintf(w, "%-28s %s", s, usage)
		if f.DefValue != "" && f.DefValue != "0s" && f.DefValue != "false" && f.DefValue != "[]" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// setUsage makes fs's usage the given synopsis and text followed by its
// flags, on fs.Output().
func setUsage(fs *flag.FlagSet, synopsis, text string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: %s\n\n%s\nFlags:\n", synopsis, text)
		printFlags(fs)
	}
}

// logLevelFlag adds --log-level to fs: the lowest level of plugin log lines
// written on stderr (default warn).
func logLevelFlag(fs *flag.FlagSet) *slog.Level {
	l := slog.LevelWarn
	fs.Func("log-level", "show plugin log lines at `LEVEL` and above: debug, info, warn or error (default warn)", func(s string) error {
		switch strings.ToLower(s) {
		case "debug":
			l = slog.LevelDebug
		case "info":
			l = slog.LevelInfo
		case "warn":
			l = slog.LevelWarn
		case "error":
			l = slog.LevelError
		default:
			return fmt.Errorf("want debug, info, warn or error")
		}
		return nil
	})
	return &l
}
