// Package stapler owns the engine: the watched certificates, the cron-driven scheduler that keeps a fresh,
// verified OCSP response for each, the in-memory index the TLS hot path staples from, and the operations an
// operator asks for (Lookup, Entries, Entry, Import, Refresh, RefreshAll, Remove). The running service and
// the command line with no service run the same engine: the command line builds one with Config.Manual over
// the store it opens.
//
// What it guarantees:
//
//   - Warm start: Start loads the storage and serves every stored response that is still valid at once;
//     certificates without one are fetched right away, and the backoff of those that were failing goes on
//     from their stored history. Ready reports when every Must-Staple certificate can
//     be stapled and every other one has had an attempt.
//   - Stale-while-revalidate with a hard expiry: a valid response is kept while refreshes fail; it is never
//     replaced by an error or by a response with an older thisUpdate, and never handed out at or after its
//     nextUpdate (or ThisUpdate plus the policy's TTL when it has none).
//   - Revoked replaces good at once and is stapled; it is logged at error level, counted, and raised as a
//     StatusChanged event. Unknown is held but not stapled unless Config.StapleUnknown.
//   - Persistence is decoupled from serving: a new response reaches the index before the disk; a failed
//     write is logged, counted, reported by Healthy, and retried at every sweep.
//   - The scheduler respects responders: refresh at the policy's time (ocspfetch.Policy.RefreshAt), backoff
//     on failure, one fetch in flight per certificate, at most MaxPerHost per responder host and MaxInFlight
//     overall. No lock is held across network or disk I/O.
//
// The Fetcher and the Storage are small interfaces declared here: ocspfetch.Client and *cache.Store are the
// real ones, and tests use fakes.
package stapler
