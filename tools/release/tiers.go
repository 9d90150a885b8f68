package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// moduleTiers orders the workspace modules by their sibling imports (tests
// included): tier 0 imports no sibling, tier n only siblings of earlier
// tiers. Each tier lists module directories, sorted. A module's go.sum
// records the hashes of the siblings it requires, and a module's hash
// covers its go.sum, so go.sum files must be written tier by tier, and an
// import cycle between modules makes that impossible: it is an error.
func moduleTiers(ws *workspace) ([][]string, error) {
	deps, err := siblingDeps(ws)
	if err != nil {
		return nil, err
	}
	return tiersOf(ws, deps)
}

// siblingDeps maps each workspace module's path to the sibling modules its
// packages import (tests included).
func siblingDeps(ws *workspace) (map[string][]string, error) {
	deps := map[string][]string{}
	for _, m := range ws.Modules {
		imports, err := moduleImports(filepath.Join(ws.Root, filepath.FromSlash(m.Dir)))
		if err != nil {
			return nil, err
		}
		sibs, err := siblingImports(ws, m, imports)
		if err != nil {
			return nil, err
		}
		deps[m.Path] = sibs
	}
	return deps, nil
}

// tiersOf layers the module graph deps (module path → sibling paths).
func tiersOf(ws *workspace, deps map[string][]string) ([][]string, error) {
	done := map[string]bool{}
	var tiers [][]string
	for len(done) < len(ws.Modules) {
		var tier []string
		for _, m := range ws.Modules {
			if done[m.Path] {
				continue
			}
			ready := true
			for _, d := range deps[m.Path] {
				if !done[d] {
					ready = false
					break
				}
			}
			if ready {
				tier = append(tier, m.Path)
			}
		}
		if len(tier) == 0 {
			var left []string
			for _, m := range ws.Modules {
				if !done[m.Path] {
					left = append(left, fmt.Sprintf("%s → %s", m.Path, strings.Join(deps[m.Path], ", ")))
				}
			}
			return nil, fmt.Errorf("import cycle between modules (go.sum hashes cannot be computed around it):\n  %s", strings.Join(left, "\n  "))
		}
		dirs := make([]string, len(tier))
		for i, p := range tier {
			done[p] = true
			m, _ := ws.module(p)
			dirs[i] = m.Dir
		}
		slices.Sort(dirs)
		tiers = append(tiers, dirs)
	}
	return tiers, nil
}
