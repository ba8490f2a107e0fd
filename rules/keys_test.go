package rules

import (
	"slices"
	"testing"
)

func TestKeys(t *testing.T) {
	keys := Keys()
	for _, want := range []string{"listen_address", "state.redis.tls.ca_file", "auth.basic_auth.password_file",
		"auth.authorization.credentials", "lua.memory_limit", "commands[].cmd", "commands[].separate_stderr",
		"routes[].retry_on_script_error", "routes[].max"} {
		if !slices.Contains(keys, want) {
			t.Errorf("Keys lacks %s: %q", want, keys)
		}
	}
	if slices.Contains(keys, "commands[].name") || slices.Contains(keys, "state") == false {
		t.Errorf("Keys: %q", keys)
	}
}
