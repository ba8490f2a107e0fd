package runner

import (
	"os/exec"
	"testing"
)

// BenchmarkRunTrue measures starting and waiting for /bin/true through the
// runner, process group and output logging included; compare with
// BenchmarkRawExecTrue on the same machine.
func BenchmarkRunTrue(b *testing.B) {
	r := New(Options{})
	a := []Action{{Name: "true", Cmd: "/bin/true", Env: []string{"AMX_STATUS=firing"}}}
	for b.Loop() {
		if res := r.Run(a)[0]; res.Err != nil {
			b.Fatal(res.Err)
		}
	}
}

// BenchmarkRawExecTrue is the limit: os/exec running /bin/true, nothing else.
func BenchmarkRawExecTrue(b *testing.B) {
	for b.Loop() {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}
