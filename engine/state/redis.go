package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configure the Redis backend, which replicas of amx share.
type RedisOptions struct {
	Options
	// Client is the connection; the store closes it.
	Client *redis.Client
	// Prefix starts every key, before the schema version ("amx" gives
	// "amx:v1:claim/...").
	Prefix string
	// LeaseTTL is how long a live process's lease, and a replica's
	// heartbeat, last unless renewed; they are renewed every third of it.
	// Default 30 s.
	LeaseTTL time.Duration
	// Timeout bounds every call to Redis. Default 2 s.
	Timeout time.Duration
}

// schema is the version of the keys' layout, in every key: a rolling
// upgrade can tell old keys from new.
const schema = "v1"

// redisStore keeps the state in Redis: every decision is a script run on
// the server, atomic, timed by the server's clock; expiries are Redis's.
type redisStore struct {
	c       *redis.Client
	prefix  string
	owner   string // this replica
	opts    RedisOptions
	timeout time.Duration

	retention atomic.Int64 // milliseconds; a reload may change it

	mu     sync.Mutex
	leases map[string]string // lease member -> its key, renewed while held

	stop     chan struct{}
	stopped  sync.WaitGroup
	closeOne sync.Once
}

// OpenRedis returns a store on a Redis server, after checking that it
// answers. It warns when Redis may evict keys, which would let an action
// run twice.
func OpenRedis(ctx context.Context, opts RedisOptions) (Store, error) {
	opts.Options.defaults()
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 30 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Prefix == "" {
		opts.Prefix = "amx"
	}
	var b [8]byte
	rand.Read(b[:])
	s := &redisStore{c: opts.Client, prefix: opts.Prefix + ":" + schema + ":", owner: hex.EncodeToString(b[:]),
		opts: opts, timeout: opts.Timeout, leases: map[string]string{}, stop: make(chan struct{})}
	s.retention.Store(opts.Retention.Milliseconds())
	cctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if err := s.c.Ping(cctx).Err(); err != nil {
		return nil, fmt.Errorf("state.redis %s: %w", opts.Client.Options().Addr, err)
	}
	if policy, err := s.c.ConfigGet(cctx, "maxmemory-policy").Result(); err == nil && policy["maxmemory-policy"] != "noeviction" {
		opts.Log.Warn("Redis may evict keys (maxmemory-policy is not noeviction): an evicted claim lets an action run twice",
			"maxmemory_policy", policy["maxmemory-policy"])
	}
	if err := s.heartbeat(cctx); err != nil {
		return nil, fmt.Errorf("state.redis: %w", err)
	}
	s.stopped.Add(1)
	go s.renew()
	return s, nil
}

func (s *redisStore) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// heartbeat says this replica is alive, for LeaseTTL: a claim it left
// pending counts as abandoned once its heartbeat is gone.
func (s *redisStore) heartbeat(ctx context.Context) error {
	return s.c.Set(ctx, s.prefix+"replica/"+s.owner, time.Now().UTC().Format(time.RFC3339), s.opts.LeaseTTL).Err()
}

// renew keeps the heartbeat and the leases of live processes alive.
func (s *redisStore) renew() {
	defer s.stopped.Done()
	t := time.NewTicker(s.opts.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := s.ctx(context.Background())
		if err := s.heartbeat(ctx); err != nil {
			s.opts.Log.Warn("state: renewing this replica's heartbeat", "err", err)
		}
		s.mu.Lock()
		held := make(map[string]string, len(s.leases))
		for m, k := range s.leases {
			held[m] = k
		}
		s.mu.Unlock()
		if len(held) > 0 {
			var keys []string
			args := []any{s.opts.LeaseTTL.Milliseconds()}
			for m, k := range held {
				keys, args = append(keys, k), append(args, m)
			}
			if err := renewScript.Run(ctx, s.c, keys, args...).Err(); err != nil && !errors.Is(err, redis.Nil) {
				s.opts.Log.Warn("state: renewing leases", "err", err)
			}
		}
		cancel()
	}
}

// renewScript pushes the expiry of leases (KEYS[i], member ARGV[i+1]) to
// the server's now plus ARGV[1] ms, if they are still held.
var renewScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i, k in ipairs(KEYS) do
  redis.call('ZADD', k, 'XX', now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', k, 2 * ttl)
end
return 1
`)

// redisClaim is a Claim as the admission script reads it: every key it
// touches named in full.
type redisClaim struct {
	Claim    string `json:"claim"` // "" when the claim has no ID
	Tomb     string `json:"tomb"`  // "" when not a firing claim with an occurrence
	Once     bool   `json:"once"`
	Lease    string `json:"lease"`
	Member   string `json:"member"`
	Max      int    `json:"max"`
	Cooldown string `json:"cooldown"`
	CoolMS   int64  `json:"cool_ms"`
	ID       string `json:"id"`
	Rate     string `json:"rate"`
	RateN    int    `json:"rate_n"`
	RateMS   int64  `json:"rate_ms"`
}

type redisWrite struct {
	Applied string      `json:"applied"`
	Ops     []redisOpJS `json:"ops"`
}

type redisOpJS struct {
	Op    string  `json:"op"`
	Key   string  `json:"key"`
	Value string  `json:"value"` // the Value as JSON
	Num   float64 `json:"num"`
	TTLMS int64   `json:"ttl_ms"`
}

// admitScript decides a batch on the server. It answers, per claim, the
// reason ("" admitted) and whether the claim found was abandoned by a
// replica that is gone, then the refused writes.
var admitScript = redis.NewScript(`
local b = cjson.decode(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, k in ipairs(b.tombs) do redis.call('SET', k, '1', 'PX', b.retention) end
local out = {}
for i, c in ipairs(b.claims) do
  local reason, stale = '', 0
  repeat
    if c.tomb ~= '' and redis.call('EXISTS', c.tomb) == 1 then reason = 'resolved'; break end
    if c.claim ~= '' then
      local v = redis.call('GET', c.claim)
      if v then
        local e = cjson.decode(v)
        local alive = e.owner ~= nil and redis.call('EXISTS', b.replicas .. e.owner) == 1
        if e.state == 'pending' and alive then reason = 'pending'; break end
        if e.state == 'pending' and c.once then
          redis.call('PEXPIRE', c.claim, b.retention); reason = 'once'; stale = 1; break
        end
        if e.state == 'pending' then stale = 1
        elseif e.state == 'succeeded' or (e.state == 'delivered' and c.once) then
          if c.once then redis.call('PEXPIRE', c.claim, b.retention); reason = 'once' else reason = 'duplicate' end
          break
        elseif e.state == 'delivered' and now - e.at < b.window then reason = 'duplicate'; break end
      end
    end
    if c.max > 0 then
      redis.call('ZREMRANGEBYSCORE', c.lease, '-inf', now)
      if redis.call('ZCARD', c.lease) >= c.max then reason = 'fingerover'; break end
    end
    if c.cool_ms > 0 then
      local holder = redis.call('GET', c.cooldown)
      if holder and holder ~= c.id then reason = 'cooldown'; break end
    end
    if c.rate_n > 0 then
      redis.call('ZREMRANGEBYSCORE', c.rate, '-inf', now - c.rate_ms)
      if redis.call('ZCARD', c.rate) >= c.rate_n then reason = 'rate'; break end
    end
    if c.claim ~= '' then
      redis.call('SET', c.claim, cjson.encode({state = 'pending', at = now, owner = b.owner, once = c.once}), 'PX', b.retention)
    end
    if c.cool_ms > 0 then redis.call('SET', c.cooldown, c.id, 'PX', c.cool_ms) end
    if c.rate_n > 0 then
      redis.call('ZADD', c.rate, now, c.member)
      redis.call('PEXPIRE', c.rate, c.rate_ms)
    end
    redis.call('ZADD', c.lease, now + b.lease_ms, c.member)
    redis.call('PEXPIRE', c.lease, 2 * b.lease_ms)
  until true
  out[#out + 1] = reason
  out[#out + 1] = stale
end
for _, w in ipairs(b.writes) do
  if redis.call('SET', w.applied, '1', 'NX', 'PX', b.retention) then
    for _, op in ipairs(w.ops) do
      if op.op == 'del' then redis.call('DEL', op.key)
      elseif op.op == 'set' then
        if op.ttl_ms > 0 then redis.call('SET', op.key, op.value, 'PX', op.ttl_ms) else redis.call('SET', op.key, op.value) end
      else
        local cur = redis.call('GET', op.key)
        local n = op.num
        if cur then
          local v = cjson.decode(cur)
          if not v.num then out[#out + 1] = 'refused'; out[#out + 1] = op.key .. ': incr of a string'; n = nil
          else n = n + (v.n or 0) end
        end
        if n then
          local enc = cjson.encode({n = n, num = true})
          if cur then redis.call('SET', op.key, enc, 'KEEPTTL')
          elseif op.ttl_ms > 0 then redis.call('SET', op.key, enc, 'PX', op.ttl_ms)
          else redis.call('SET', op.key, enc) end
        end
      end
    end
  end
end
return out
`)

func (s *redisStore) key(kind string, parts ...string) string { return s.prefix + ID(kind, parts...) }

func (s *redisStore) Admit(ctx context.Context, b Batch) (Admission, error) {
	type batchJS struct {
		Owner     string       `json:"owner"`
		Replicas  string       `json:"replicas"`
		Retention int64        `json:"retention"`
		Window    int64        `json:"window"`
		LeaseMS   int64        `json:"lease_ms"`
		Tombs     []string     `json:"tombs"`
		Claims    []redisClaim `json:"claims"`
		Writes    []redisWrite `json:"writes"`
	}
	in := batchJS{Owner: s.owner, Replicas: s.prefix + "replica/", Retention: s.retention.Load(),
		LeaseMS: s.opts.LeaseTTL.Milliseconds(), Tombs: []string{}, Claims: []redisClaim{}, Writes: []redisWrite{}}
	for _, occ := range b.Tombstones {
		in.Tombs = append(in.Tombs, s.prefix+KindTombstone+"/"+occ)
	}
	var b8 [8]byte
	for _, c := range b.Claims {
		rand.Read(b8[:])
		rc := redisClaim{Once: c.Once, Lease: s.key(KindLease, c.Action, c.Key), Member: s.owner + ":" + hex.EncodeToString(b8[:]),
			Max: c.Max, ID: c.ID}
		in.Window = max(in.Window, c.Window.Milliseconds())
		if c.ID != "" {
			rc.Claim = s.prefix + KindClaim + "/" + c.ID
		}
		if c.Firing && c.Occurrence != "" {
			rc.Tomb = s.prefix + KindTombstone + "/" + c.Occurrence
		}
		if c.Cooldown > 0 {
			rc.Cooldown, rc.CoolMS = s.key(KindCooldown, c.Action, c.Key), max(1, c.Cooldown.Milliseconds())
		}
		if c.Rate.N > 0 {
			rc.Rate, rc.RateN, rc.RateMS = s.key(KindRate, c.Action), c.Rate.N, max(1, c.Rate.Per.Milliseconds())
		}
		in.Claims = append(in.Claims, rc)
	}
	for _, w := range b.Writes {
		rw := redisWrite{Applied: s.prefix + KindApplied + "/" + w.ID, Ops: []redisOpJS{}}
		for _, op := range w.Ops {
			v, _ := json.Marshal(op.Value)
			rw.Ops = append(rw.Ops, redisOpJS{Op: op.Op, Key: s.key(KindValue, w.Namespace, op.Key), Value: string(v),
				Num: op.Value.Num, TTLMS: op.TTL.Milliseconds()})
		}
		in.Writes = append(in.Writes, rw)
	}
	arg, err := json.Marshal(in)
	if err != nil {
		return Admission{}, err
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	res, err := admitScript.Run(cctx, s.c, nil, arg).Slice()
	if err != nil {
		return Admission{}, fmt.Errorf("state: admit: %w", err)
	}
	adm := Admission{Verdicts: make([]Verdict, len(b.Claims))}
	for i := range b.Claims {
		reason, _ := res[2*i].(string)
		stale, _ := res[2*i+1].(int64)
		adm.Verdicts[i] = Verdict{Reason: reason, Stale: stale == 1}
		if reason == "" {
			l := Lease{key: in.Claims[i].Lease, member: in.Claims[i].Member}
			adm.Verdicts[i].Lease = l
			s.mu.Lock()
			s.leases[in.Claims[i].Member] = in.Claims[i].Lease
			s.mu.Unlock()
		}
	}
	for i := 2 * len(b.Claims); i+1 < len(res); i += 2 {
		msg, _ := res[i+1].(string)
		adm.Refused = append(adm.Refused, msg)
	}
	return adm, nil
}

// settleScript moves claims to their outcomes, as the core's settle does.
var settleScript = redis.NewScript(`
local b = cjson.decode(ARGV[1])
for _, r in ipairs(b.release) do redis.call('ZREM', r[1], r[2]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, st in ipairs(b.settle) do
  local v = redis.call('GET', st.claim)
  if v then
    local e = cjson.decode(v)
    if st.copy and e.state ~= 'succeeded' then
    elseif st.outcome == 'failed' then redis.call('DEL', st.claim)
    elseif st.outcome == 'delivered' and not st.once and st.window <= 0 then redis.call('DEL', st.claim)
    elseif st.outcome == 'delivered' and not st.once then
      redis.call('SET', st.claim, cjson.encode({state = 'delivered', at = now}), 'PX', st.window)
    else
      redis.call('SET', st.claim, cjson.encode({state = st.outcome, at = now, once = st.once}), 'PX', b.retention)
    end
  end
end
return 1
`)

func (s *redisStore) Settle(ctx context.Context, st []Settlement) error {
	type settleJS struct {
		Claim   string `json:"claim"`
		Outcome string `json:"outcome"`
		Once    bool   `json:"once"`
		Window  int64  `json:"window"`
		Copy    bool   `json:"copy"`
	}
	in := struct {
		Retention int64       `json:"retention"`
		Settle    []settleJS  `json:"settle"`
		Release   [][2]string `json:"release"`
	}{Retention: s.retention.Load(), Settle: []settleJS{}, Release: [][2]string{}}
	for _, x := range st {
		if x.ID != "" {
			in.Settle = append(in.Settle, settleJS{s.prefix + KindClaim + "/" + x.ID, x.Outcome, x.Once, x.Window.Milliseconds(), x.Copy})
		}
		if l := x.Release; l.member != "" {
			s.drop(l)
			in.Release = append(in.Release, [2]string{l.key, l.member})
		}
	}
	if len(in.Settle) == 0 && len(in.Release) == 0 {
		return nil
	}
	arg, _ := json.Marshal(in)
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := settleScript.Run(cctx, s.c, nil, arg).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("state: settle: %w", err)
	}
	return nil
}

// Await polls the claim until it is settled, or its owner is gone.
func (s *redisStore) Await(ctx context.Context, id string) (string, error) {
	key := s.prefix + KindClaim + "/" + id
	for {
		cctx, cancel := s.ctx(ctx)
		v, err := s.c.Get(cctx, key).Result()
		cancel()
		switch {
		case errors.Is(err, redis.Nil):
			return Failed, nil
		case err != nil:
			return "", err
		}
		var e struct {
			State string `json:"state"`
			Owner string `json:"owner"`
		}
		if json.Unmarshal([]byte(v), &e) == nil && e.State != Pending {
			return e.State, nil
		}
		// A replica that is gone will not settle it.
		if n, err := s.c.Exists(ctx, s.prefix+"replica/"+e.Owner).Result(); err == nil && n == 0 {
			return Failed, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *redisStore) Release(l Lease) {
	key, member := l.key, l.member
	if member == "" {
		return
	}
	s.drop(l)
	ctx, cancel := s.ctx(context.Background())
	defer cancel()
	if err := s.c.ZRem(ctx, key, member).Err(); err != nil {
		// It expires with its TTL.
		s.opts.Log.Warn("state: releasing a lease", "err", err)
	}
}

// drop stops renewing a lease: it is given back, or expires with its TTL.
func (s *redisStore) drop(l Lease) {
	s.mu.Lock()
	delete(s.leases, l.member)
	s.mu.Unlock()
}

func (s *redisStore) Get(ctx context.Context, namespace, key string) (Value, bool, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	v, err := s.c.Get(cctx, s.key(KindValue, namespace, key)).Result()
	if errors.Is(err, redis.Nil) {
		return Value{}, false, nil
	}
	if err != nil {
		return Value{}, false, fmt.Errorf("state: get: %w", err)
	}
	var val Value
	if err := json.Unmarshal([]byte(v), &val); err != nil {
		return Value{}, false, err
	}
	return val, true, nil
}

func (s *redisStore) List(ctx context.Context, prefix string) ([]Entry, error) {
	var out []Entry
	iter := s.c.Scan(ctx, 0, s.prefix+prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		id := strings.TrimPrefix(k, s.prefix)
		kind, _, _ := strings.Cut(id, "/")
		e := Entry{ID: id, Kind: kind}
		if ttl, err := s.c.PTTL(ctx, k).Result(); err == nil && ttl > 0 {
			e.Expires = time.Now().Add(ttl)
		}
		switch kind {
		case KindLease, KindRate:
			n, _ := s.c.ZCard(ctx, k).Result()
			e.Count = int(n)
		case KindValue:
			if v, err := s.c.Get(ctx, k).Result(); err == nil {
				var val Value
				if json.Unmarshal([]byte(v), &val) == nil {
					e.Value = &val
				}
			}
		case KindClaim:
			if v, err := s.c.Get(ctx, k).Result(); err == nil {
				var c struct {
					State string `json:"state"`
					Owner string `json:"owner"`
					Once  bool   `json:"once"`
				}
				json.Unmarshal([]byte(v), &c)
				e.State, e.Owner, e.Once = c.State, c.Owner, c.Once
			}
		case KindCooldown:
			e.Claim, _ = s.c.Get(ctx, k).Result()
		}
		out = append(out, e)
	}
	return out, iter.Err()
}

func (s *redisStore) Delete(ctx context.Context, prefix string) (int, error) {
	n := 0
	iter := s.c.Scan(ctx, 0, s.prefix+prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		if strings.HasPrefix(strings.TrimPrefix(k, s.prefix), KindLease+"/") || strings.HasPrefix(strings.TrimPrefix(k, s.prefix), "replica/") {
			continue // leases end with their processes
		}
		d, err := s.c.Del(ctx, k).Result()
		if err != nil {
			return n, err
		}
		n += int(d)
	}
	return n, iter.Err()
}

func (s *redisStore) Health() error {
	ctx, cancel := s.ctx(context.Background())
	defer cancel()
	return s.c.Ping(ctx).Err()
}

// SetRetention changes the retention of what is written from now on.
func (s *redisStore) SetRetention(d time.Duration) {
	if d > 0 {
		s.retention.Store(d.Milliseconds())
	}
}

// OnEvict does nothing: Redis evicts on its own (see the startup warning
// about maxmemory-policy).
func (s *redisStore) OnEvict(func(kind string)) {}

// resolveMsg is a resolve published to the other replicas.
type resolveMsg struct {
	Owner        string   `json:"owner"`
	Fingerprints []string `json:"fingerprints"`
}

func (s *redisStore) Broadcast(ctx context.Context, fingerprints []string) error {
	msg, _ := json.Marshal(resolveMsg{s.owner, fingerprints})
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	return s.c.Publish(cctx, s.prefix+"resolve", msg).Err()
}

// OnResolve subscribes to the other replicas' resolves. go-redis
// resubscribes after a reconnection; a resolve published while this
// replica was disconnected is not received.
func (s *redisStore) OnResolve(f func(fingerprints []string)) {
	sub := s.c.Subscribe(context.Background(), s.prefix+"resolve")
	s.stopped.Add(1)
	go func() {
		defer s.stopped.Done()
		defer sub.Close()
		ch := sub.Channel()
		for {
			select {
			case <-s.stop:
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				var r resolveMsg
				if json.Unmarshal([]byte(m.Payload), &r) == nil && r.Owner != s.owner {
					f(r.Fingerprints)
				}
			}
		}
	}()
}

func (s *redisStore) Tombstoned(ctx context.Context, occurrences []string) ([]string, error) {
	if len(occurrences) == 0 {
		return nil, nil
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	pipe := s.c.Pipeline()
	cmds := make([]*redis.IntCmd, len(occurrences))
	for i, occ := range occurrences {
		cmds[i] = pipe.Exists(cctx, s.prefix+KindTombstone+"/"+occ)
	}
	if _, err := pipe.Exec(cctx); err != nil {
		return nil, err
	}
	var out []string
	for i, c := range cmds {
		if c.Val() == 1 {
			out = append(out, occurrences[i])
		}
	}
	return out, nil
}

func (s *redisStore) Shared() bool { return true }

func (s *redisStore) String() string { return "redis " + s.c.Options().Addr }

func (s *redisStore) Close() error {
	var err error
	s.closeOne.Do(func() {
		close(s.stop)
		s.stopped.Wait()
		ctx, cancel := s.ctx(context.Background())
		s.c.Del(ctx, s.prefix+"replica/"+s.owner)
		cancel()
		err = s.c.Close()
	})
	return err
}
