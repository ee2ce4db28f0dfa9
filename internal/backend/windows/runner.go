// Package windows is the backend for real Windows Server nodes: IIS sites,
// virtual IP addresses and shared or mirrored volumes, driven through a small
// fixed set of embedded PowerShell scripts (the primary path) and appcmd (the
// fallback and cross-check). Every command is an argument vector built by a
// pure function; user text travels as JSON on stdin or as one inert argv
// element, never through a shell. The package builds and is tested on every
// OS: commands run through a Runner, and tests replay recorded outputs.
package windows

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
)

// Runner runs one program with an argument vector and stdin, and returns
// what it wrote and its exit code. err is set only when the program could not
// be run at all (not found, context cancelled); a non-zero exit is not an
// error at this level, because appcmd reports meaning through exit codes.
type Runner interface {
	Run(ctx context.Context, name string, args []string, stdin []byte) (stdout, stderr []byte, exit int, err error)
}

// ExecRunner runs programs with os/exec: argv elements are passed as they
// are (Go applies Windows' CommandLineToArgvW quoting), never through cmd /c.
type ExecRunner struct{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, name string, args []string, stdin []byte) ([]byte, []byte, int, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return out.Bytes(), errb.Bytes(), exitErr.ExitCode(), nil
	}
	if err != nil {
		return out.Bytes(), errb.Bytes(), -1, fmt.Errorf("run %s: %w", name, err)
	}
	return out.Bytes(), errb.Bytes(), 0, nil
}
