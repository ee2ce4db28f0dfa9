//go:build !unix

package main

import "time"

// selfCPU is not measured here: the harness runs on Linux (up's RSS and
// CPU are read from /proc too).
func selfCPU() time.Duration { return 0 }
