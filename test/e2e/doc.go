// Package e2e holds end-to-end tests that run the real sitekeeper binary
// (built by `make test-e2e`, path in SITEKEEPER_BIN). They carry the e2e
// build tag so that `go test ./...` stays fast.
package e2e
