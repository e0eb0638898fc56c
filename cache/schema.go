package cache

// Everything about the on-disk format is in this file: bucket names, the schema version and its migrations,
// the width and order of keys, and the encoding of every record. Nothing else in the package knows a byte
// offset.
//
// Layout (schema 1):
//
//	meta         "schema"   → uint32 big-endian schema version; "created" → time record
//	certs        EncodeKey  → certRecord        watched certificates (leaf and issuer DER, URLs, Must-Staple)
//	responses    EncodeKey  → responseRecord    the newest verified response of each certificate
//	history      EncodeKey  → historyRecord     the last MaxHistory fetch attempts of each certificate
//	sessions     id         → sessionRecord     TLS sessions stored for resumption, with their expiry
//	ticket_keys  "keys"     → ticketKeysRecord  the current and previous session ticket keys
//
// EncodeKey is 64 bytes: the 32-byte SHA-256 of the issuer's SubjectPublicKeyInfo, then the serial number
// big-endian and left-padded with zeros to 32 bytes. Keys are fixed-width, so bbolt's byte order sorts them by
// issuer, then numerically by serial.
//
// Every record starts with a version byte. A decoder reads every version up to its own and refuses a newer one
// with ErrNewerRecord; a change of layout bumps the record version, and a change of buckets bumps
// SchemaVersion and adds a migration step.
//
// Record version 2 is version 1's layout followed by a CRC-32C (Castagnoli), big-endian, of every byte before
// it: bbolt checksums nothing, and a flipped bit in a stored response would otherwise be stapled until the
// next refresh. A record whose checksum does not match is ErrCorruptRecord, skipped like any record that does
// not decode. Version 1 records, without the trailer, are still read.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	bolt "go.etcd.io/bbolt"

	"staple/certs"
	"staple/ocspwire"
)

// SchemaVersion is the bucket layout this build writes. A file with an older version is migrated when opened
// for writing; a file with a newer one is refused with ErrNewerSchema.
const SchemaVersion = 1

// recordVersion is the version byte this build writes at the start of every record.
const recordVersion = 2

// sealedVersion is the first record version with a checksum trailer.
const sealedVersion = 2

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// seal appends the checksum trailer to a record.
func seal(b []byte) []byte { return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)) }

// newDecoder returns a decoder for record b: for a sealed record, the record without its trailer once the
// checksum matches, else a decoder that has failed.
func newDecoder(b []byte) decoder {
	if len(b) == 0 || b[0] < sealedVersion || b[0] > recordVersion {
		return decoder{b: b} // version 1, or a version() error to come
	}
	if len(b) < 5 {
		return decoder{err: fmt.Errorf("%w: a record of %d bytes cannot hold its checksum", ErrCorruptRecord, len(b))}
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return decoder{err: fmt.Errorf("%w: checksum mismatch (the file was changed on disk)", ErrCorruptRecord)}
	}
	return decoder{b: body}
}

var (
	bucketMeta       = []byte("meta")
	bucketCerts      = []byte("certs")
	bucketResponses  = []byte("responses")
	bucketHistory    = []byte("history")
	bucketSessions   = []byte("sessions")
	bucketTicketKeys = []byte("ticket_keys")

	allBuckets = [][]byte{bucketMeta, bucketCerts, bucketResponses, bucketHistory, bucketSessions, bucketTicketKeys}

	metaSchema    = []byte("schema")
	metaCreated   = []byte("created")
	ticketKeysKey = []byte("keys")
)

// Limits on what a record may hold. They bound what a corrupt or hostile file can make the decoders allocate.
const (
	// MaxHistory is how many fetch attempts the history of one certificate keeps.
	MaxHistory = 20
	// MaxResponseSize bounds a stored OCSP response (ocspfetch caps bodies well below it).
	MaxResponseSize = 1 << 20
	// MaxCertSize bounds a stored DER certificate.
	MaxCertSize = 64 << 10
	// MaxSessionIDSize and MaxSessionSize bound a stored TLS session.
	MaxSessionIDSize = 512
	MaxSessionSize   = 64 << 10
	// MaxTicketKeySize bounds one session ticket key.
	MaxTicketKeySize = 256

	maxURLs      = 16
	maxURLLen    = 4096
	maxShortText = 1024
)

// migration upgrades a file from schema version from to from+1 inside the opening transaction.
type migration struct {
	from int
	run  func(tx *bolt.Tx) error
}

// migrations lists the steps from every older schema to SchemaVersion, oldest first. Schema 1 is the first
// released layout, so the list is empty; bumping SchemaVersion means appending a step here.
var migrations = []migration{}

// initialize creates the buckets of a new file, or checks the schema of an existing one and migrates it with
// steps. It runs in the read-write transaction of Open; now is recorded as the creation time of a new file.
func initialize(tx *bolt.Tx, steps []migration, now time.Time) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error { return errForeign }); err != nil {
			return fmt.Errorf("%w: a bbolt file without staple's meta bucket", ErrCorrupt)
		}
		for _, name := range allBuckets {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		meta = tx.Bucket(bucketMeta)
		if err := meta.Put(metaCreated, encodeTime(nil, now)); err != nil {
			return err
		}
		return putSchemaVersion(meta, SchemaVersion)
	}
	v, err := schemaVersion(meta)
	if err != nil {
		return err
	}
	if v > SchemaVersion {
		return newerSchemaError(v)
	}
	for v < SchemaVersion {
		step, ok := findMigration(steps, v)
		if !ok {
			return fmt.Errorf("%w: no migration from schema %d", ErrCorrupt, v)
		}
		if err := step.run(tx); err != nil {
			return fmt.Errorf("cache: migrating schema %d to %d: %w", v, v+1, err)
		}
		v++
		if err := putSchemaVersion(meta, v); err != nil {
			return err
		}
	}
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			// bbolt's ErrIncompatibleValue: the name is a plain key, which staple never writes.
			return fmt.Errorf("%w: bucket %s: %v", ErrCorrupt, name, err)
		}
	}
	return nil
}

var errForeign = errors.New("foreign bucket")

func findMigration(steps []migration, from int) (migration, bool) {
	for _, m := range steps {
		if m.from == from {
			return m, true
		}
	}
	return migration{}, false
}

// checkSchema is initialize for a read-only open: it refuses what it cannot read without writing.
func checkSchema(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return fmt.Errorf("%w: a bbolt file without staple's meta bucket", ErrCorrupt)
	}
	v, err := schemaVersion(meta)
	if err != nil {
		return err
	}
	switch {
	case v > SchemaVersion:
		return newerSchemaError(v)
	case v < SchemaVersion:
		return fmt.Errorf("%w: schema %d needs migrating to %d, which a read-only open cannot do "+
			"(open it once for writing, for example with staple serve)", ErrOldSchema, v, SchemaVersion)
	}
	return nil
}

func newerSchemaError(v int) error {
	return fmt.Errorf("%w: schema %d, this build reads up to %d (upgrade staple, or run with --reset-cache "+
		"to move the file aside and start empty)", ErrNewerSchema, v, SchemaVersion)
}

func schemaVersion(meta *bolt.Bucket) (int, error) {
	b := meta.Get(metaSchema)
	if len(b) != 4 {
		return 0, fmt.Errorf("%w: schema version is %d bytes, want 4", ErrCorrupt, len(b))
	}
	return int(binary.BigEndian.Uint32(b)), nil
}

func putSchemaVersion(meta *bolt.Bucket, v int) error {
	return meta.Put(metaSchema, binary.BigEndian.AppendUint32(nil, uint32(v)))
}

// KeyLen is the width of a certificate key on disk. The record encoding (EncodeKey, DecodeResponse, …) is
// exported for other stores of the same records (package fleet keeps them in etcd): a record can move between
// stores unchanged.
const KeyLen = 64

// EncodeKey returns the fixed-width, sortable on-disk form of k.
func EncodeKey(k certs.Key) []byte {
	b := make([]byte, KeyLen)
	copy(b, k.IssuerHash[:])
	serial := k.Bytes()[32:]
	copy(b[KeyLen-len(serial):], serial)
	return b
}

// DecodeKey reverses EncodeKey; a malformed key wraps ErrCorruptRecord.
func DecodeKey(b []byte) (certs.Key, error) {
	if len(b) != KeyLen {
		return certs.Key{}, fmt.Errorf("%w: key of %d bytes, want %d", ErrCorruptRecord, len(b), KeyLen)
	}
	serial := bytes.TrimLeft(b[32:], "\x00")
	if len(serial) == 0 {
		serial = []byte{0}
	}
	k, err := certs.KeyFromBytes(append(append(make([]byte, 0, 32+len(serial)), b[:32]...), serial...))
	if err != nil {
		return certs.Key{}, fmt.Errorf("%w: %w", ErrCorruptRecord, err)
	}
	return k, nil
}

// Response records (version 1; version 2 adds the checksum trailer):
//
//	u8 version | u8 status | u8 flags (bit 0: has reason) | uvarint reason
//	time producedAt | time thisUpdate | time nextUpdate | time expires | time refreshAt | time revokedAt
//	time fetched | string url | string etag | string lastModified | bytes raw
func encodeResponse(r Response) []byte {
	b := make([]byte, 0, len(r.Raw)+len(r.URL)+len(r.ETag)+len(r.LastModified)+128)
	b = append(b, recordVersion, byte(r.Status), boolByte(r.HasReason))
	b = binary.AppendUvarint(b, uint64(r.RevocationReason))
	for _, t := range []time.Time{r.ProducedAt, r.ThisUpdate, r.NextUpdate, r.Expires, r.RefreshAt, r.RevokedAt, r.Fetched} {
		b = encodeTime(b, t)
	}
	b = encodeBytes(b, []byte(r.URL))
	b = encodeBytes(b, []byte(r.ETag))
	b = encodeBytes(b, []byte(r.LastModified))
	return seal(encodeBytes(b, r.Raw))
}

// DecodeResponse decodes a response record; ErrNewerRecord or ErrCorruptRecord when it cannot.
func DecodeResponse(b []byte) (Response, error) {
	d := newDecoder(b)
	d.version()
	var r Response
	status := d.byte()
	if status > byte(ocspwire.Unknown) {
		d.fail("status %d", status)
	}
	r.Status = ocspwire.Status(status)
	flags := d.byte()
	if flags&^1 != 0 {
		d.fail("flags %#x", flags)
	}
	r.HasReason = flags&1 != 0
	r.RevocationReason = int(d.uvarint(255))
	for _, t := range []*time.Time{&r.ProducedAt, &r.ThisUpdate, &r.NextUpdate, &r.Expires, &r.RefreshAt, &r.RevokedAt, &r.Fetched} {
		*t = d.time()
	}
	r.URL = d.string(maxURLLen)
	r.ETag = d.string(maxShortText)
	r.LastModified = d.string(maxShortText)
	r.Raw = d.bytes(MaxResponseSize)
	if len(r.Raw) == 0 {
		d.fail("empty response")
	}
	return r, d.end()
}

// Certificate records (version 1; version 2 adds the checksum trailer):
//
//	u8 version | u8 flags (bit 0: Must-Staple) | time added | bytes leaf | bytes issuer
//	uvarint count | string url...
func encodeCert(c Cert) []byte {
	b := make([]byte, 0, len(c.Leaf)+len(c.Issuer)+64)
	b = append(b, recordVersion, boolByte(c.MustStaple))
	b = encodeTime(b, c.Added)
	b = encodeBytes(b, c.Leaf)
	b = encodeBytes(b, c.Issuer)
	b = binary.AppendUvarint(b, uint64(len(c.URLs)))
	for _, u := range c.URLs {
		b = encodeBytes(b, []byte(u))
	}
	return seal(b)
}

// DecodeCert decodes a certificate record.
func DecodeCert(b []byte) (Cert, error) {
	d := newDecoder(b)
	d.version()
	var c Cert
	flags := d.byte()
	if flags&^1 != 0 {
		d.fail("flags %#x", flags)
	}
	c.MustStaple = flags&1 != 0
	c.Added = d.time()
	c.Leaf = d.bytes(MaxCertSize)
	c.Issuer = d.bytes(MaxCertSize)
	if n := d.uvarint(maxURLs); n > 0 {
		c.URLs = make([]string, n)
		for i := range c.URLs {
			c.URLs[i] = d.string(maxURLLen)
		}
	}
	if d.err == nil && (len(c.Leaf) == 0 || len(c.Issuer) == 0) {
		d.fail("certificate record without leaf or issuer")
	}
	return c, d.end()
}

// History records (version 1; version 2 adds the checksum trailer):
//
//	u8 version | uvarint count (≤ MaxHistory) | count × (time at | u8 status | string reason | string error
//	| string url | varint latency in nanoseconds)
func encodeHistory(h []Attempt) []byte {
	b := []byte{recordVersion}
	b = binary.AppendUvarint(b, uint64(len(h)))
	for _, a := range h {
		b = encodeTime(b, a.Time)
		b = append(b, byte(a.Status))
		b = encodeBytes(b, []byte(a.Reason))
		b = encodeBytes(b, []byte(a.Error))
		b = encodeBytes(b, []byte(a.URL))
		b = binary.AppendVarint(b, int64(a.Latency))
	}
	return seal(b)
}

// DecodeHistory decodes a history record.
func DecodeHistory(b []byte) ([]Attempt, error) {
	d := newDecoder(b)
	d.version()
	n := d.uvarint(MaxHistory)
	h := make([]Attempt, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		var a Attempt
		a.Time = d.time()
		if s := d.byte(); s <= byte(ocspwire.Unknown) {
			a.Status = ocspwire.Status(s)
		} else {
			d.fail("status %d", s)
		}
		a.Reason = d.string(maxShortText)
		a.Error = d.string(maxShortText)
		a.URL = d.string(maxURLLen)
		a.Latency = time.Duration(d.varint())
		h = append(h, a)
	}
	return h, d.end()
}

// Session records (version 1; version 2 adds the checksum trailer): u8 version | time expires | bytes data.
func encodeSession(data []byte, expires time.Time) []byte {
	b := make([]byte, 0, len(data)+24)
	b = append(b, recordVersion)
	b = encodeTime(b, expires)
	return seal(encodeBytes(b, data))
}

// DecodeSession decodes a session record.
func DecodeSession(b []byte) (data []byte, expires time.Time, err error) {
	d := newDecoder(b)
	d.version()
	expires = d.time()
	data = d.bytes(MaxSessionSize)
	return data, expires, d.end()
}

// Ticket key records (version 1; version 2 adds the checksum trailer):
// u8 version | time rotated | bytes current | bytes previous.
func encodeTicketKeys(k TicketKeys) []byte {
	b := []byte{recordVersion}
	b = encodeTime(b, k.Rotated)
	b = encodeBytes(b, k.Current)
	return seal(encodeBytes(b, k.Previous))
}

// DecodeTicketKeys decodes a ticket keys record.
func DecodeTicketKeys(b []byte) (TicketKeys, error) {
	d := newDecoder(b)
	d.version()
	var k TicketKeys
	k.Rotated = d.time()
	k.Current = d.bytes(MaxTicketKeySize)
	k.Previous = d.bytes(MaxTicketKeySize)
	return k, d.end()
}

// Times are a presence byte (0: the zero time.Time) then, when present, varint seconds since the Unix epoch
// and uvarint nanoseconds. They decode in UTC.
func encodeTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// Byte strings and text are a uvarint length then the bytes.
func encodeBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// decoder reads a record. The first error sticks; every read after it returns a zero value. Byte strings are
// copied, so nothing decoded points into bbolt's memory map.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorruptRecord, fmt.Sprintf(format, args...))
	}
}

// version reads the version byte and accepts versions 1 to recordVersion.
func (d *decoder) version() {
	v := d.byte()
	switch {
	case d.err != nil:
	case v > recordVersion:
		d.err = fmt.Errorf("%w: record version %d, this build reads up to %d", ErrNewerRecord, v, recordVersion)
	case v == 0:
		d.fail("record version 0")
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint(max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	if v > max {
		d.fail("value %d over the limit %d", v, max)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// maxUnix bounds decoded seconds to years 0 to 9999, which time.Time represents exactly.
const maxUnix = 253402300799

func (d *decoder) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
	default:
		d.fail("bad time marker")
		return time.Time{}
	}
	sec := d.varint()
	nsec := d.uvarint(999_999_999)
	if d.err != nil {
		return time.Time{}
	}
	if sec < -62135596800 || sec > maxUnix {
		d.fail("time out of range")
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec)).UTC()
	if t.IsZero() {
		d.fail("zero time marked present")
	}
	return t
}

func (d *decoder) bytes(max int) []byte {
	n := d.uvarint(uint64(max))
	if d.err != nil {
		return nil
	}
	if uint64(len(d.b)) < n {
		d.fail("truncated: %d bytes announced, %d left", n, len(d.b))
		return nil
	}
	if n == 0 {
		return nil
	}
	v := bytes.Clone(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(max int) string {
	return string(d.bytes(max))
}

func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}
