// Package version holds the build's version, set with -ldflags at build time.
package version

// Version is the release; "dev" for an untagged build.
var Version = "dev"

// Commit is the git commit the binary was built from.
var Commit = "unknown"
