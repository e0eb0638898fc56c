package lab

import (
	"errors"
	"time"
)

// ErrLocked is returned when another process holds the lab's lock for longer than the lock timeout.
var ErrLocked = errors.New("lab: the lab is locked by another process")

// lockTimeout bounds how long an issue or revoke waits for another staple process to finish its own.
const lockTimeout = 10 * time.Second

// lockPoll is how often a waiting process tries the lock again.
const lockPoll = 20 * time.Millisecond
