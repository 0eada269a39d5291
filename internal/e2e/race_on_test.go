//go:build race

package e2e

// raceBuild is true when the tests run under the race detector: the
// function binary is then built with -race too.
const raceBuild = true
