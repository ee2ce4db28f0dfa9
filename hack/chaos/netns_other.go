//go:build !linux

package main

import (
	"fmt"
	"os"
	"time"
)

func runNetns(string, int, int, time.Duration, uint64, bool, bool, func(string, ...any)) int {
	fmt.Fprintln(os.Stderr, "chaos -netns needs Linux network namespaces")
	return 1
}
