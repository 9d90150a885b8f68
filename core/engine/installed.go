package engine

import "sync"

// InstalledFunc returns a memoised check of whether each kind's executable
// is on this machine: a name found by lookPath (PATH) or a candidate path
// for which exists is true. Drivers that are not Installers count as not
// installed.
func InstalledFunc(drivers map[Kind]Driver, goos string, env func(string) string, lookPath func(string) (string, error), exists func(string) bool) func(Kind) bool {
	var mu sync.Mutex
	memo := map[Kind]bool{}
	return func(k Kind) bool {
		mu.Lock()
		defer mu.Unlock()
		if v, ok := memo[k]; ok {
			return v
		}
		found := false
		if inst, ok := drivers[k].(Installer); ok {
			names, paths := inst.BinaryCandidates(goos, env)
			for _, n := range names {
				if _, err := lookPath(n); err == nil {
					found = true
				}
			}
			for _, p := range paths {
				found = found || exists(p)
			}
		}
		memo[k] = found
		return found
	}
}
