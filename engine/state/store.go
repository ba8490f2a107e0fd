package state

import (
	"context"
	"sync"
	"time"
)

// local is the Store of both backends: the core's decisions, and for bolt
// a journal that writes them to disk.
type local struct {
	core *core
	j    *journal // nil: memory only
	name string

	stop     chan struct{}
	stopped  sync.WaitGroup
	closeOne sync.Once
}

// NewMemory returns a store that keeps everything in memory: a restart
// forgets it.
func NewMemory(opts Options) Store {
	s := &local{core: newCore(opts), name: "memory (lost on restart)"}
	s.start()
	return s
}

// start runs the sweeper, which removes expired entries once a minute.
func (s *local) start() {
	s.stop = make(chan struct{})
	s.stopped.Add(1)
	go func() {
		defer s.stopped.Done()
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.core.sweep(s.core.opts.Now(), false)
			}
		}
	}()
}

// Admit returns once what lets a process start is durable; the rest of the
// batch is written within the journal's lazy delay.
func (s *local) Admit(ctx context.Context, b Batch) (Admission, error) {
	if err := s.Health(); err != nil {
		return Admission{}, err
	}
	adm, seq := s.core.admit(b)
	if err := s.durable(ctx, seq); err != nil {
		return adm, err
	}
	return adm, nil
}

// durable waits until the journal has written up to seq.
func (s *local) durable(ctx context.Context, seq uint64) error {
	if s.j == nil || seq == 0 {
		return nil
	}
	return s.j.wait(ctx, seq)
}

func (s *local) Await(ctx context.Context, id string) (string, error) {
	return s.core.await(ctx, id)
}

// Settle does not wait for the disk: an outcome lost in a crash leaves its
// claim pending, which the next run of amx counts as started.
func (s *local) Settle(_ context.Context, st []Settlement) error {
	s.core.settle(st)
	return s.Health()
}

func (s *local) Release(l Lease) { s.core.release(l) }

func (s *local) Get(_ context.Context, namespace, key string) (Value, bool, error) {
	v, ok := s.core.get(namespace, key)
	return v, ok, nil
}

func (s *local) List(_ context.Context, prefix string) ([]Entry, error) {
	return s.core.list(prefix), nil
}

func (s *local) Delete(ctx context.Context, prefix string) (int, error) {
	n, seq := s.core.delete(prefix)
	return n, s.durable(ctx, seq)
}

func (s *local) Health() error {
	if s.j == nil {
		return nil
	}
	return s.j.health()
}

func (s *local) SetRetention(d time.Duration) { s.core.setRetention(d) }

func (s *local) OnEvict(f func(kind string)) { s.core.onEvict.Store(&f) }

// Tombstoned returns the occurrences with a tombstone.
func (s *local) Tombstoned(_ context.Context, occurrences []string) ([]string, error) {
	return s.core.tombstoned(occurrences), nil
}

func (s *local) Shared() bool { return false }

// Broadcast and OnResolve do nothing: no other replica shares the store.
func (s *local) Broadcast(context.Context, []string) error { return nil }
func (s *local) OnResolve(func([]string))                  {}

func (s *local) String() string { return s.name }

func (s *local) Close() error {
	var err error
	s.closeOne.Do(func() {
		close(s.stop)
		s.stopped.Wait()
		if s.j != nil {
			err = s.j.close()
		}
	})
	return err
}
