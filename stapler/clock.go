package stapler

import (
	"sync/atomic"
	"time"
)

// hotTick is how often the hot path's clock is read from the system while the stapler runs.
const hotTick = 50 * time.Millisecond

// hotClock is the wall clock of the TLS hot path. On some machines time.Now costs 80 ns or more (a VM's
// clock source), more than the rest of Staple together; so while the stapler runs, a goroutine reads the
// clock every hotTick and Staple reads an atomic. What it returns is that reading plus one tick, never
// earlier than the true time: when it says a staple is still valid, the staple is; within a tick of the
// expiry Staple reads the exact clock. Before Start, after Close, and with Config.Now set (tests), Staple
// asks the clock itself.
type hotClock struct {
	nanos   atomic.Int64 // the last reading, in Unix nanoseconds; 0 when not running
	stop    chan struct{}
	stopped chan struct{}
}

// start begins the readings; stop ends them. Neither may be called twice.
func (c *hotClock) start() {
	c.nanos.Store(time.Now().UnixNano())
	c.stop, c.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(c.stopped)
		t := time.NewTicker(hotTick)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case now := <-t.C:
				c.nanos.Store(now.UnixNano())
			}
		}
	}()
}

func (c *hotClock) halt() {
	if c.stop == nil {
		return
	}
	c.nanos.Store(0) // from now on, the hot path asks the clock itself
	close(c.stop)
	<-c.stopped
}

// now returns an upper bound of the current time: the last reading plus a tick, or time.Now when not running.
func (c *hotClock) now() time.Time {
	if n := c.nanos.Load(); n != 0 {
		return time.Unix(0, n+int64(hotTick))
	}
	return time.Now()
}
