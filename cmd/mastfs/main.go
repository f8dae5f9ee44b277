// Command mastfs mounts the MAST archive's FTPS staging server as a
// read-only folder, fetching only the bytes that are read into a local cache.
package main

import (
	"errors"
	"fmt"
	"os"

	"mastfs/cmd/mastfs/internal/fstab"
)

// Exit codes, documented in the README.
const (
	exitOK      = 0
	exitFailure = 1 // the operation failed: server, mount or cache
	exitUsage   = 2 // bad flags or arguments
)

const usage = `mastfs: the MAST FTPS staging server as a read-only folder

Usage:
  mastfs mount [flags] MOUNTPOINT     mount the stage (foreground; --daemon to detach)
  mastfs unmount MOUNTPOINT           unmount it
  mastfs check [flags]                walk every step of talking to the server, and say what fails
  mastfs prefetch PATH...             read files or directories of a mount into its cache
  mastfs status [MOUNTPOINT]          server, cache and connections of running mounts
  mastfs refresh [PATH]               list a mounted directory again now, and say what changed
  mastfs cache du|clear [flags]       what is cached, per file; delete it
  mastfs demo [MOUNTPOINT]            mount a generated stage served from this process (no account, no network)
  mastfs help COMMAND                 flags and examples of one command

  mastfs SOURCE MOUNTPOINT -o OPTS    as a mount helper: mount -t fuse.mastfs, /etc/fstab (see README)

Exit codes: 0 success, 1 failure (server, mount, cache), 2 bad usage.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "mount":
		err = cmdMount(rest)
	case "unmount", "umount":
		err = cmdUnmount(rest)
	case "check":
		err = cmdCheck(rest)
	case "prefetch":
		err = cmdPrefetch(rest)
	case "status":
		err = cmdStatus(rest)
	case "refresh":
		err = cmdRefresh(rest)
	case "cache":
		err = cmdCache(rest)
	case "demo":
		err = cmdDemo(rest)
	case "help", "-h", "--help":
		if len(rest) > 0 {
			return run([]string{rest[0], "--help"})
		}
		fmt.Print(usage)
		return exitOK
	default:
		if !fstab.IsHelperCall(args) {
			fmt.Fprintf(os.Stderr, "mastfs: unknown command %q\n\n%s", cmd, usage)
			return exitUsage
		}
		cmd = "mount"
		var margs []string
		if margs, err = fstab.MountArgs(args); err != nil {
			err = usageError{err.Error()}
		} else {
			err = cmdMount(margs)
		}
	}
	if err == nil {
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		if ue.msg != "" {
			fmt.Fprintf(os.Stderr, "mastfs %s: %s\n", cmd, ue.msg)
		}
		return exitUsage
	}
	if errors.Is(err, errHelp) {
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "mastfs %s: %v\n", cmd, err)
	return exitFailure
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

var errHelp = errors.New("help shown")
