// Package fleet owns what many staple nodes share through one etcd cluster: the etcd store of certificates,
// responses and fetch history (a stapler.Storage with the cache package's record encoding), the election of
// the one node that fetches, the watch that brings every node the responses and certificates others stored,
// and the TLS session ticket keys and sessions that let a session made on one node resume on any other.
//
// Keys live under Config.Prefix (keys.go lists them). A response is written only if it is newer, by
// thisUpdate and then status (ocspwire.Stamp), than the stored one, compared inside an etcd transaction, so a
// slow node never overwrites a fresher answer (ErrStale). Every call to etcd has a deadline
// (Config.RequestTimeout), and none is made while holding a lock that the TLS hot path takes.
//
// Nothing here may stop stapling. When etcd is unreachable, stores fail with errors (the stapler keeps its
// responses in memory and writes them back when etcd returns), the Elector reports stapler.NoLeader about
// one lease TTL later so that nodes fetch for themselves what nears expiry, sessions become misses and ticket keys
// stay those in use. Connect does not wait for etcd: a node starts and staples without it.
//
// Wiring for staple serve: Connect; NewStore as the stapler's Config.Storage; an Elector whose Role is the
// stapler's Config.Role and whose OnChange calls Stapler.RoleChanged; a Watcher over the stapler (Offer,
// Adopt, and Flush on every resync); TicketKeys as the tlsserver.Server's TicketKeyStore with Watch calling
// Server.UseTicketKeys and RotateIfDue run by the leader; Sessions' NewSession and ResumeSession as the
// server's hooks.
package fleet
