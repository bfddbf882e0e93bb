package main

import (
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal, where a status line may be
// redrawn in place; a log file, a pipe or /dev/null is not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgress returns a progress bar of max steps drawn on w, or nil when
// w is not a terminal: then it writes desc once, as one line, so that a
// log or a file gets no bar frames. Callers treat a nil bar as "draw
// nothing".
func newProgress(w io.Writer, max int64, desc string, opts ...progressbar.Option) *progressbar.ProgressBar {
	if !isTerminal(w) {
		fmt.Fprintf(w, "%s (%d steps)...\n", desc, max)
		return nil
	}
	opts = append([]progressbar.Option{progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount()}, opts...)
	return progressbar.NewOptions64(max, opts...)
}
