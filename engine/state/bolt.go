package state

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// bucket holds every entry, by ID, as JSON.
var bucket = []byte("state/v1")

// OpenBolt opens (or creates) the state file at path. A file another
// process holds (another amx) fails within lockTimeout instead of waiting.
func OpenBolt(path string, lockTimeout time.Duration, opts Options) (Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        lockTimeout,
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("state.path %s: locked by another process (is another amx using it?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("state.path %s: %w", path, err)
	}
	c := newCore(opts)
	now := c.opts.Now()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		var expired [][]byte
		err = b.ForEach(func(k, v []byte) error {
			e := new(Entry)
			if err := json.Unmarshal(v, e); err != nil || !now.Before(e.Expires) {
				expired = append(expired, k) // what cannot be read is dropped, not fatal
				return nil
			}
			if e.Kind == KindClaim && e.State == Pending {
				c.opts.Log.Warn("a claim was left pending by an earlier run of amx: counted as started", "id", string(k))
			}
			c.load(string(k), e)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range expired {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("state.path %s: %w", path, err)
	}
	j := newJournal(db)
	c.journal = j.add
	s := &local{core: c, j: j, name: "bolt " + path}
	s.start()
	return s, nil
}

// journal writes the core's changes to the file in the order they were
// made. One writer takes everything queued since its last commit into one
// transaction, so concurrent notifications share an fsync. (bbolt's own
// Batch shares commits too, but neither keeps the order of the calls nor
// runs each function once, and an entry written twice must end as the
// second write left it.)
//
// Changes no caller waits for (outcomes, see lazy) are held up to
// lazyDelay for a change that must be durable, so that a commit, with its
// two fsyncs, serves many notifications.
type journal struct {
	db *bolt.DB

	mu      sync.Mutex
	queue   []change
	urgent  bool   // the queue holds a change a caller waits for
	queued  uint64 // sequence number of the last add
	written uint64 // sequence number written up to
	err     error  // of the last commit
	wake    chan struct{}
	notify  chan struct{} // closed and replaced after every commit
	closed  bool
	done    chan struct{}
}

// lazyDelay is how long changes nobody waits for may wait for a commit.
const lazyDelay = 100 * time.Millisecond

func newJournal(db *bolt.DB) *journal {
	j := &journal{db: db, wake: make(chan struct{}, 1), notify: make(chan struct{}), done: make(chan struct{})}
	go j.run()
	return j
}

// add queues changes; urgent ones are committed at once, the others
// within lazyDelay.
func (j *journal) add(ch []change, urgent bool) uint64 {
	j.mu.Lock()
	j.queue = append(j.queue, ch...)
	j.queued++
	j.urgent = j.urgent || urgent
	seq := j.queued
	j.mu.Unlock()
	if urgent {
		select {
		case j.wake <- struct{}{}:
		default:
		}
	}
	return seq
}

func (j *journal) run() {
	defer close(j.done)
	lazy := time.NewTimer(lazyDelay)
	lazy.Stop()
	for {
		j.mu.Lock()
		closed, urgent, queued := j.closed, j.urgent, len(j.queue)
		if queued == 0 || (!urgent && !closed) {
			j.mu.Unlock()
			if closed {
				return
			}
			if queued > 0 { // lazy changes only: wait a little for more
				lazy.Reset(lazyDelay)
				select {
				case <-j.wake:
				case <-lazy.C:
					j.mu.Lock()
					j.urgent = true
					j.mu.Unlock()
				}
				lazy.Stop()
				continue
			}
			<-j.wake
			continue
		}
		batch, upTo := dedupe(j.queue), j.queued
		j.queue, j.urgent = nil, false
		j.mu.Unlock()

		err := j.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucket)
			for _, c := range batch {
				if c.e == nil {
					if err := b.Delete([]byte(c.id)); err != nil {
						return err
					}
					continue
				}
				v, err := json.Marshal(c.e)
				if err != nil {
					return err
				}
				if err := b.Put([]byte(c.id), v); err != nil {
					return err
				}
			}
			return nil
		})
		j.mu.Lock()
		j.written, j.err = upTo, err
		close(j.notify)
		j.notify = make(chan struct{})
		j.mu.Unlock()
	}
}

// dedupe keeps the last change of each entry, in the order of the last
// changes: an outcome settled and then delivered is written once.
func dedupe(batch []change) []change {
	last := make(map[string]int, len(batch))
	for i, c := range batch {
		last[c.id] = i
	}
	if len(last) == len(batch) {
		return batch
	}
	out := batch[:0]
	for i, c := range batch {
		if last[c.id] == i {
			out = append(out, c)
		}
	}
	return out
}

// wait returns once the changes numbered up to seq are written, with the
// error of their commit.
func (j *journal) wait(ctx context.Context, seq uint64) error {
	for {
		j.mu.Lock()
		written, err, notify := j.written, j.err, j.notify
		j.mu.Unlock()
		if written >= seq {
			if err != nil {
				return fmt.Errorf("state: write: %w", err)
			}
			return nil
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return fmt.Errorf("state: write not confirmed: %w", ctx.Err())
		}
	}
}

func (j *journal) health() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	if j.err != nil {
		return fmt.Errorf("state: last write failed: %w", j.err)
	}
	return nil
}

// close writes what is queued and closes the file.
func (j *journal) close() error {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
	<-j.done
	return j.db.Close()
}

// Records is a bucket of numbered records in the state file, beside the
// state: what amx keeps of its own past (the run history), which a restart
// must not lose either.
type Records interface {
	// ForEach calls f with every record, in the order of their numbers.
	ForEach(f func(n uint64, v []byte) error) error
	// Write puts and deletes records in one transaction.
	Write(put map[uint64][]byte, del []uint64) error
}

// RecordsIn returns the bucket named name in the file of s, or nil when s
// keeps nothing on disk.
func RecordsIn(s Store, name string) (Records, error) {
	l, ok := s.(*local)
	if !ok || l.j == nil {
		return nil, nil
	}
	r := &records{db: l.j.db, name: []byte(name)}
	err := r.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(r.name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("state file: bucket %s: %w", name, err)
	}
	return r, nil
}

type records struct {
	db   *bolt.DB
	name []byte
}

func (r *records) ForEach(f func(uint64, []byte) error) error {
	return r.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(r.name).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return nil // not one of ours
			}
			return f(binary.BigEndian.Uint64(k), v)
		})
	})
}

func (r *records) Write(put map[uint64][]byte, del []uint64) error {
	return r.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(r.name)
		var k [8]byte
		for _, n := range del {
			binary.BigEndian.PutUint64(k[:], n)
			if err := b.Delete(k[:]); err != nil {
				return err
			}
		}
		for n, v := range put {
			binary.BigEndian.PutUint64(k[:], n)
			if err := b.Put(k[:], v); err != nil {
				return err
			}
		}
		return nil
	})
}
