package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"mastfs/cmd/internal/mountinfo"
	"mastfs/cmd/mastfs/internal/status"
)

const refreshExamples = `  mastfs refresh ~/stage              what arrived in the stage since it was listed
  mastfs refresh ~/stage/products     one directory and those under it
  cd ~/stage && mastfs refresh        the current directory
`

// cmdRefresh makes a mount drop its listings under a path, so that files
// staged since show at once rather than after --dir-cache-ttl, and says
// what changed.
func cmdRefresh(args []string) error {
	fset := flag.NewFlagSet("refresh", flag.ContinueOnError)
	asJSON := fset.Bool("json", false, "print what changed as JSON")
	if err := parse(fset, args, refreshExamples); err != nil {
		return err
	}
	if fset.NArg() > 1 {
		return usageError{"want at most one PATH in a mastfs mount (see mastfs refresh --help)"}
	}
	p := "."
	if fset.NArg() == 1 {
		p = fset.Arg(0)
	}
	mounts, err := mountinfo.OfType(fuseType)
	if err != nil {
		return err
	}
	m, err := findMount(mounts, p)
	if err != nil {
		return err
	}
	abs, err := mountinfo.Resolve(p)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(m.Point, abs)
	if err != nil {
		return err
	}
	if rel == "." {
		rel = ""
	}
	r, err := status.Refresh(m.Point, filepath.ToSlash(rel))
	if err != nil {
		return controlError(m, err)
	}
	if *asJSON {
		return printJSON(os.Stdout, r)
	}
	printRefresh(os.Stdout, abs, r)
	return nil
}

// printRefresh writes one line per name that changed, then a summary.
func printRefresh(w io.Writer, where string, r status.Refreshed) {
	for _, l := range []struct {
		mark  string
		names []string
	}{{"+", r.Added}, {"-", r.Removed}, {"~", r.Changed}} {
		for _, n := range l.names {
			fmt.Fprintf(w, "%s %s\n", l.mark, n)
		}
	}
	dirs := "1 listing"
	if r.Dirs != 1 {
		dirs = fmt.Sprintf("%d listings", r.Dirs)
	}
	if len(r.Added)+len(r.Removed)+len(r.Changed) == 0 {
		fmt.Fprintf(w, "refreshed %s: dropped %s; nothing changed\n", where, dirs)
		return
	}
	fmt.Fprintf(w, "refreshed %s: dropped %s; %d added, %d removed, %d changed\n",
		where, dirs, len(r.Added), len(r.Removed), len(r.Changed))
}

// controlError says why a mount's control socket did not answer, and
// what the user can do.
func controlError(m mountinfo.Mount, err error) error {
	switch {
	case errors.Is(err, status.ErrNotRegistered):
		return fmt.Errorf("%s (%s): %w: it was mounted by another user (ask as that user), "+
			"or by a mastfs too old to have one", m.Point, m.Source, err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%s (%s) did not answer: %v; it was mounted by another user: ask as that user", m.Point, m.Source, err)
	}
	return fmt.Errorf("%s (%s) did not answer: %v; its process may have died (then: mastfs unmount --lazy %s)",
		m.Point, m.Source, err, m.Point)
}
