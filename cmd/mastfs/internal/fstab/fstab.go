// Package fstab turns the command line of a mount helper into mastfs
// mount flags. mount(8) hands a file system of type fuse.mastfs to
// mount.fuse3, which runs
//
//	mastfs SOURCE MOUNTPOINT -o OPTIONS
//
// through /bin/sh with mastfs found on PATH. mastfs then mounts as
// "mastfs mount --daemon" would, returning once the mount is ready, as a
// mount helper must. SOURCE is a --host value, which may carry the remote
// directory: archive.stsci.edu/anonymous/anonymous12345.
package fstab

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// helperOption is one -o option and the mount flag it stands for.
type helperOption struct {
	flag     string
	hasValue bool
}

// helperOptions are the -o options mastfs takes, by name.
var helperOptions = map[string]helperOption{
	"host":                 {"--host", true},
	"port":                 {"--port", true},
	"tls":                  {"--tls", true},
	"user":                 {"--user", true},
	"username":             {"--user", true}, // in case mount(8) keeps user= to itself
	"email":                {"--email", true},
	"password_file":        {"--password-file", true},
	"remote_dir":           {"--remote-dir", true},
	"ca_file":              {"--ca-file", true},
	"insecure_skip_verify": {"--insecure-skip-verify", false},
	"max_conns":            {"--max-conns", true},
	"timeout":              {"--timeout", true},
	"cache_dir":            {"--cache-dir", true},
	"cache_size":           {"--cache-size", true},
	"chunk_size":           {"--chunk-size", true},
	"dir_cache_ttl":        {"--dir-cache-ttl", true},
	"allow_other":          {"--allow-other", false},
	"log_file":             {"--log-file", true},
	"log_level":            {"--log-level", true},
	"metrics_addr":         {"--metrics-addr", true},
}

// helperIgnored are options for mount(8), mount.fuse3 or systemd (_netdev
// orders the mount after the network, x-systemd.automount mounts on first
// use), or generic ones that a read-only, nosuid, nodev mount already
// satisfies.
var helperIgnored = map[string]bool{
	"_netdev": true, "nofail": true, "auto": true, "noauto": true, "user": true, "users": true,
	"nouser": true, "owner": true, "group": true, "defaults": true, "ro": true, "rw": true,
	"dev": true, "nodev": true, "suid": true, "nosuid": true, "exec": true, "noexec": true,
	"atime": true, "noatime": true, "relatime": true, "norelatime": true, "strictatime": true,
	"diratime": true, "nodiratime": true, "lazytime": true, "async": true, "sync": true,
	"default_permissions": true,
}

// IsHelperCall reports whether args are a mount helper's rather than a
// command's: "SOURCE MOUNTPOINT -o OPTIONS".
func IsHelperCall(args []string) bool {
	if len(args) < 2 || strings.HasPrefix(args[0], "-") {
		return false
	}
	for _, a := range args[2:] {
		if a == "-o" || strings.HasPrefix(a, "-o") {
			return true
		}
	}
	return strings.ContainsAny(args[0], ".:/")
}

// MountArgs turns "SOURCE MOUNTPOINT -o OPTIONS" into the arguments of
// mastfs mount that mount as mount.fuse3 asks: detached, once ready. Every
// error it returns is a mistake in the command line.
func MountArgs(args []string) ([]string, error) {
	source, mountpoint := args[0], args[1]
	var opts []string
	for i := 2; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-o":
			if i+1 == len(args) {
				return nil, errors.New("-o wants options, e.g. -o user=me@example.org,remote_dir=/me@example.org")
			}
			i++
			opts = append(opts, strings.Split(args[i], ",")...)
		case strings.HasPrefix(a, "-o"):
			opts = append(opts, strings.Split(a[2:], ",")...)
		case a == "-n" || a == "-s" || a == "-v":
			// mount(8)'s own: no mtab, sloppy, verbose.
		default:
			return nil, fmt.Errorf("mount helper: unexpected argument %q; want SOURCE MOUNTPOINT -o OPTIONS "+
				"(or a command: mastfs help)", a)
		}
	}
	flags, err := helperFlags(source, opts)
	if err != nil {
		return nil, err
	}
	return append(flags, "--daemon", mountpoint), nil
}

// helperFlags turns a source and -o options into mount flags.
func helperFlags(source string, opts []string) ([]string, error) {
	var flags []string
	if source != "" && source != "mastfs" && source != "none" {
		flags = append(flags, "--host", source)
	}
	for _, o := range opts {
		name, value, hasValue := strings.Cut(o, "=")
		switch {
		case name == "":
		case helperIgnored[name] && !hasValue,
			strings.HasPrefix(name, "x-"), strings.HasPrefix(name, "X-"), name == "comment":
		default:
			opt, ok := helperOptions[name]
			switch {
			case !ok:
				return nil, fmt.Errorf("mount option %q is not one of mastfs's: %s", o, helperOptionNames())
			case opt.hasValue && !hasValue:
				return nil, fmt.Errorf("mount option %s wants a value: %s=...", name, name)
			case !opt.hasValue && hasValue:
				return nil, fmt.Errorf("mount option %s takes no value", name)
			case opt.hasValue:
				flags = append(flags, opt.flag, value)
			default:
				flags = append(flags, opt.flag)
			}
		}
	}
	return flags, nil
}

func helperOptionNames() string {
	names := make([]string, 0, len(helperOptions))
	for n, o := range helperOptions {
		if o.hasValue {
			n += "="
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}
