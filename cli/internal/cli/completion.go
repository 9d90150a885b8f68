package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// CompletionCmd is `flm completion bash|zsh|fish`.
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

// Run prints the completion script, generated from the command tree so it
// never drifts from the real commands.
func (c CompletionCmd) Run(a *App, k *kong.Kong) error {
	words := map[string][]string{}
	var walk func(n *kong.Node, path []string)
	walk = func(n *kong.Node, path []string) {
		key := strings.Join(path, " ")
		for _, ch := range n.Children {
			if ch.Hidden {
				continue
			}
			words[key] = append(words[key], ch.Name)
			walk(ch, append(slices.Clone(path), ch.Name))
		}
		for _, group := range [][]*kong.Flag{n.Flags, k.Model.Flags} {
			for _, f := range group {
				if !f.Hidden {
					words[key] = append(words[key], "--"+f.Name)
				}
			}
		}
	}
	walk(k.Model.Node, nil)
	keys := make([]string, 0, len(words))
	for key := range words {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	switch c.Shell {
	case "fish":
		return fishCompletion(a.Stdout, keys, words)
	default:
		return bashCompletion(a.Stdout, keys, words, c.Shell == "zsh")
	}
}

func bashCompletion(w io.Writer, keys []string, words map[string][]string, zsh bool) error {
	var b strings.Builder
	b.WriteString("# flm completion; load with: source <(flm completion " + map[bool]string{true: "zsh", false: "bash"}[zsh] + ")\n")
	if zsh {
		b.WriteString("autoload -U +X bashcompinit && bashcompinit\n")
	}
	b.WriteString(`_flm() {
  local cur path i w
  cur="${COMP_WORDS[COMP_CWORD]}"
  path=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    [[ "$w" == -* ]] && continue
    case "${path:+$path }$w" in
`)
	for _, k := range keys {
		if k != "" {
			fmt.Fprintf(&b, "      %q) path=%q ;;\n", k, k)
		}
	}
	b.WriteString("    esac\n  done\n  case \"$path\" in\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "    %q) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", k, strings.Join(words[k], " "))
	}
	b.WriteString("  esac\n}\ncomplete -o default -F _flm flm\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func fishCompletion(w io.Writer, keys []string, words map[string][]string) error {
	var b strings.Builder
	b.WriteString("# flm completion; load with: flm completion fish | source\n")
	b.WriteString("function __flm_path\n  set -l p\n  for w in (commandline -opc)[2..-1]\n    string match -q -- '-*' $w; and continue\n    set p $p $w\n  end\n  echo (string join ' ' $p)\nend\n")
	for _, k := range keys {
		var subs, flags []string
		for _, wd := range words[k] {
			if name, ok := strings.CutPrefix(wd, "--"); ok {
				flags = append(flags, name)
			} else {
				subs = append(subs, wd)
			}
		}
		cond := fmt.Sprintf("test (__flm_path) = %q", k)
		if len(subs) > 0 {
			fmt.Fprintf(&b, "complete -c flm -f -n '%s' -a %q\n", cond, strings.Join(subs, " "))
		}
		for _, f := range flags {
			fmt.Fprintf(&b, "complete -c flm -n '%s' -l %s\n", cond, f)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
