package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"staple/atomicfile"
)

// Errors of the cache. Open, Reset and the Store methods wrap them with the path and what to do.
var (
	// ErrNotFound: no record under that key (or a session that has expired).
	ErrNotFound = errors.New("cache: not found")
	// ErrLocked: another process (a running staple serve) holds the file's exclusive lock.
	ErrLocked = errors.New("cache: file is locked by another staple process")
	// ErrCorrupt: the file is not a readable staple cache. Reset moves it aside.
	ErrCorrupt = errors.New("cache: file is corrupt")
	// ErrNewerSchema: the file was written by a newer staple with a bucket layout this build does not know.
	ErrNewerSchema = errors.New("cache: file was written by a newer staple")
	// ErrOldSchema: the file needs a migration, which a read-only open cannot do.
	ErrOldSchema = errors.New("cache: file has an older schema")
	// ErrCorruptRecord: one record does not decode; the others are still readable.
	ErrCorruptRecord = errors.New("cache: corrupt record")
	// ErrNewerRecord: one record was written by a newer staple.
	ErrNewerRecord = errors.New("cache: record written by a newer staple")
	// ErrReadOnly: a write on a store opened read-only.
	ErrReadOnly = errors.New("cache: store is open read-only")
	// ErrTooLarge: a value over one of the Max… limits.
	ErrTooLarge = errors.New("cache: value too large")
	// ErrOlder: a response older (by thisUpdate) than the one stored; the stored one is kept.
	ErrOlder = errors.New("cache: response is older than the stored one")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("cache: store is closed")
)

// DefaultLockTimeout is how long Open waits for another process to release the file.
const DefaultLockTimeout = 2 * time.Second

// Options configure Open. The zero Options open the file for reading and writing, creating it if needed.
type Options struct {
	// ReadOnly opens an existing file with a shared lock, for the CLI when no service is running. It never
	// creates, migrates or resets the file.
	ReadOnly bool
	// LockTimeout is how long to wait for another process's lock. Zero means DefaultLockTimeout.
	LockTimeout time.Duration
	// Reset moves an existing file aside (never deletes it) and starts with an empty cache; Store.ResetTo
	// tells where the old file went.
	Reset bool
	// Now returns the current time, for the creation stamp, reset file names and the default session expiry.
	// Nil means time.Now.
	Now func() time.Time
}

// Store is the bbolt cache file. It is safe for concurrent use. Every method runs its own short transaction,
// never held across anything but the store's own work, and every byte slice it returns is a copy.
type Store struct {
	db       *bolt.DB
	path     string
	readOnly bool
	now      func() time.Time
	resetTo  string
}

// Open opens (or, unless ReadOnly, creates) the cache file at path, with mode 0600 and its directory 0700.
//
// Errors: ErrLocked when another process holds the file past LockTimeout; ErrCorrupt when it is not a readable
// staple cache (Reset moves it aside); ErrNewerSchema when a newer staple wrote it; ErrOldSchema for a
// read-only open of a file that needs migrating; fs.ErrNotExist for a read-only open of a missing file, or of
// an empty one (a read-write open makes a new cache in it).
func Open(path string, o Options) (*Store, error) {
	s := &Store{path: path, readOnly: o.ReadOnly, now: o.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if o.ReadOnly && o.Reset {
		return nil, fmt.Errorf("cache: %s: a read-only open cannot reset the file", path)
	}
	if !o.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	if o.Reset {
		to, err := Reset(path, s.now())
		if err != nil {
			return nil, err
		}
		s.resetTo = to
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		// bbolt would block opening a FIFO, and map or lock what is no file.
		return nil, fmt.Errorf("%w: %s is %s, not a cache file", atomicfile.ErrNotRegular, path, atomicfile.Kind(st.Mode()))
	} else if o.ReadOnly && err == nil && st.Size() == 0 {
		// bbolt would try to write a new database in it, through a descriptor opened for reading.
		return nil, fmt.Errorf("cache: %s is empty (no staple has written it yet): %w", path, fs.ErrNotExist)
	}
	timeout := o.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	db, err := openBolt(path, &bolt.Options{Timeout: timeout, ReadOnly: o.ReadOnly})
	if err != nil {
		return nil, openError(path, err)
	}
	s.db = db
	if !o.ReadOnly {
		if err := os.Chmod(path, 0o600); err != nil {
			db.Close()
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	check := func(tx *bolt.Tx) error { return initialize(tx, migrations, s.now()) }
	run := s.update
	if o.ReadOnly {
		check, run = checkSchema, s.view
	}
	if err := run(check); err != nil {
		db.Close()
		return nil, s.explain(err)
	}
	return s, nil
}

// openBolt is bolt.Open, with a panic on a mangled file turned into ErrCorrupt. bbolt reads the file through
// a memory mapping: a file shorter than its pages (a truncated copy) faults (SIGBUS) when bbolt reads past its
// end, which would kill the process with a stack dump; SetPanicOnFault makes it a panic like the others.
func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	return bolt.Open(path, 0o600, o)
}

func openError(path string, err error) error {
	var pe *fs.PathError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("%w: %s (is staple serve running? stop it, or inspect the cache through it)", ErrLocked, path)
	case errors.Is(err, ErrCorrupt):
		return fmt.Errorf("%s: %w (run with --reset-cache to move it aside and start with an empty cache)", path, err)
	case errors.As(err, &pe):
		return fmt.Errorf("cache: %w", err)
	}
	return fmt.Errorf("%w: %s: %v (run with --reset-cache to move it aside and start with an empty cache)", ErrCorrupt, path, err)
}

// explain adds the path and the remedy to an error from the opening transaction, unless it has them already
// (a panic that recoverCorrupt turned into ErrCorrupt).
func (s *Store) explain(err error) error {
	if offsetPastAnyFile(err) {
		return fmt.Errorf("%w: %s: a page id past any file size (run with --reset-cache to move it aside and start with an empty cache)",
			ErrCorrupt, s.path)
	}
	if strings.Contains(err.Error(), s.path) {
		return err
	}
	if errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("%s: %w (run with --reset-cache to move it aside and start with an empty cache)", s.path, err)
	}
	return fmt.Errorf("%s: %w", s.path, err)
}

// offsetPastAnyFile reports a write that bbolt made where a mangled page id put a page: past the largest file
// there can be (EFBIG), or at an offset that overflowed, which os refuses before any system call (the one
// error of a write at an offset that is not an errno).
func offsetPastAnyFile(err error) bool {
	if errors.Is(err, syscall.EFBIG) {
		return true
	}
	var pe *fs.PathError
	var errno syscall.Errno
	return errors.As(err, &pe) && pe.Op == "writeat" && !errors.As(pe.Err, &errno) && !errors.Is(pe.Err, fs.ErrClosed)
}

// Reset moves the file at path aside, to path.reset-<UTC time> (never deleting anything), so that the next
// Open starts with an empty cache. It returns the new name, or "" when there was no file. The caller must not
// hold the file open.
func Reset(path string, now time.Time) (string, error) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	base := path + ".reset-" + now.UTC().Format("20060102T150405Z")
	to := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
			break
		}
		to = fmt.Sprintf("%s.%d", base, i)
	}
	if err := os.Rename(path, to); err != nil {
		return "", fmt.Errorf("cache: moving the cache aside: %w", err)
	}
	return to, nil
}

// Path returns the file's path.
func (s *Store) Path() string { return s.path }

// ResetTo returns where Open moved the previous file when Options.Reset was set, or "".
func (s *Store) ResetTo() string { return s.resetTo }

// ReadOnly reports whether the store was opened read-only.
func (s *Store) ReadOnly() bool { return s.readOnly }

// Close closes the file. Reads and writes after Close return ErrClosed.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("cache: closing %s: %w", s.path, err)
	}
	return nil
}

// Check runs bbolt's consistency check over the whole file and returns every problem it finds, joined; nil
// means the file is consistent.
func (s *Store) Check() error {
	return s.view(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, s.path, errors.Join(errs...))
		}
		return nil
	})
}

// view runs fn in a read transaction. bbolt panics on some corrupt pages, and faults on a mapping read past
// the end of a truncated file (see openBolt); either becomes ErrCorrupt.
func (s *Store) view(fn func(tx *bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.recoverCorrupt(&err)
	return s.mapBolt(s.db.View(fn))
}

// update runs fn in a read-write transaction that commits (with fsync) before update returns nil.
func (s *Store) update(fn func(tx *bolt.Tx) error) (err error) {
	if s.readOnly {
		return ErrReadOnly
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.recoverCorrupt(&err)
	return s.mapBolt(s.db.Update(fn))
}

// batch is update through bbolt's Batch, which coalesces concurrent writers into one commit. fn may run more
// than once and must be idempotent. bbolt may run it on a goroutine of its own, which recovers its panics and
// runs it again alone on the caller's: both turn faults into panics.
func (s *Store) batch(fn func(tx *bolt.Tx) error) (err error) {
	if s.readOnly {
		return ErrReadOnly
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.recoverCorrupt(&err)
	return s.mapBolt(s.db.Batch(func(tx *bolt.Tx) error {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		return fn(tx)
	}))
}

func (s *Store) recoverCorrupt(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %s: %v (run with --reset-cache to move it aside and start with an empty cache)",
			ErrCorrupt, s.path, r)
	}
}

// mapBolt turns bbolt's errors that mean something to a caller into the package's: a closed database into
// ErrClosed, and a key that leads to a nested bucket where staple keeps a record (bbolt's
// ErrIncompatibleValue on a write or a delete; staple never makes buckets inside its own) into ErrCorrupt with
// the path and the remedy.
func (s *Store) mapBolt(err error) error {
	switch {
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return ErrClosed
	case errors.Is(err, berrors.ErrIncompatibleValue):
		return fmt.Errorf("%w: %s: a record's key leads to a bucket (run with --reset-cache to move it aside and start with an empty cache)",
			ErrCorrupt, s.path)
	}
	return err
}
