// Package drivertest runs the four engine drivers, through core's detector
// and state machine, against the fake engines: the table of issue 3
// (healthy, loading, slow, down, wrong server, garbage, recovery) for every
// kind, and model listing across all four.
package drivertest
