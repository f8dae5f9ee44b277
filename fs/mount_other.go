//go:build !linux

package fs

// directMountFlags: mounts are made by the platform's FUSE helper there.
const directMountFlags = 0
