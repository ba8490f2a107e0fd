package rules

import (
	"regexp"
	"slices"
)

// indexRE matches the index of a list item in a key path: commands[2].
var indexRE = regexp.MustCompile(`\[\d+\]`)

// everyMapping is a configuration that reaches every mapping amx reads, so
// that decoding it meets every key. Its values need not be valid.
const everyMapping = `
state: {redis: {tls: {}}}
auth: {basic_auth: {}, authorization: {}}
lua: {}
commands: [{cmd: x}]
routes: [{name: r, lua: "return"}]
`

// Keys returns every configuration key amx accepts, as paths
// (state.redis.address, commands[].max), sorted: for the documentation's
// test, which checks that each is documented and that each documented one
// exists.
func Keys() []string {
	keys := make(map[string]bool)
	cfg := Config{Set: &Set{}}
	_ = cfg.parseKeys("keys.yml", []byte(everyMapping), newSources(), keys)
	out := make([]string, 0, len(keys))
	for k := range keys {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
