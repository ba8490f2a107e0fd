// Command rawexec is the limit amx's spawning is measured against: -c
// goroutines that do nothing but exec a command, for -d. It prints the
// execs per second.
package main

import (
	"flag"
	"fmt"
	"log"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	conns := flag.Int("c", 16, "concurrent exec loops")
	d := flag.Duration("d", 10*time.Second, "how long to run")
	cmd := flag.String("cmd", "/bin/true", "command to exec")
	flag.Parse()
	var n atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(*d)
	for range *conns {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := exec.Command(*cmd).Run(); err != nil {
					log.Fatal(err)
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	// The rate, this loop's own CPU per exec in µs, as the bench reads
	// amx's from /proc, and its children's.
	rate := float64(n.Load()) / time.Since(start).Seconds()
	fmt.Printf("%.1f %.1f %.1f\n", rate, perExec(syscall.RUSAGE_SELF, n.Load()), perExec(syscall.RUSAGE_CHILDREN, n.Load()))
}

// perExec is the CPU used by who (self or children) per exec, in µs.
func perExec(who int, n int64) float64 {
	var ru syscall.Rusage
	syscall.Getrusage(who, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return float64(cpu.Microseconds()) / float64(max(n, 1))
}
