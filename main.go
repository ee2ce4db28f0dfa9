// Command sitekeeper keeps IIS web and FTP sites highly available across
// Windows nodes. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sitekeeper/sitekeeper/internal/cli"
	"github.com/sitekeeper/sitekeeper/internal/profiling"
)

func main() {
	if _, err := profiling.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(cli.ExitUsage)
	}
	stopCPU, err := profiling.StartCPU()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(cli.ExitUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	stopCPU()
	os.Exit(code)
}
