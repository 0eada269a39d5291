//go:build !linux

package main

import (
	"os/exec"
	"time"
)

// CPU times, peak memory and the load average are read from /proc: Linux
// only.

func processCPU(int) time.Duration { return 0 }
func peakRSS(int) int64            { return 0 }
func selfCPU() time.Duration       { return 0 }
func setDeathSignal(*exec.Cmd)     {}
func loadAverage() string          { return "?" }
func machineCPU() (cpuTicks, bool) { return cpuTicks{}, false }
