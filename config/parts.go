package config

import (
	"crypto"
	"time"

	"github.com/rs/zerolog"

	"staple/fleet"
	"staple/ocspfetch"
	"staple/stapler"
)

// StaplerConfig returns the engine's configuration from the [fetch] table: the fetcher with its deadlines,
// size cap, CertID hash, nonce and overrides, the refresh policy, and the scheduler's limits; and from
// [fleet], how near expiry a node with no leader in sight fetches for itself. version names
// staple in the User-Agent; now is the clock (nil means time.Now). The service and the command line (which
// runs the engine over the store when no service does) both start from it, so both fetch alike.
func (c *Config) StaplerConfig(version string, now func() time.Time) stapler.Config {
	f := c.Fetch
	client := &ocspfetch.Client{
		UserAgent:      "staple/" + version,
		ConnectTimeout: f.ConnectTimeout.Duration,
		Timeout:        f.Timeout.Duration,
		MaxBodySize:    f.MaxResponseBytes,
		Overrides:      f.Overrides,
		Nonce:          f.Nonce,
		Hash:           f.CertIDHash(),
		Now:            now,
	}
	return stapler.Config{
		Fetcher:         client,
		Policy:          ocspfetch.Policy{Margin: f.Margin.Duration, NoNextUpdateTTL: f.NoNextUpdateTTL.Duration},
		Sweep:           f.Sweep,
		MaxPerHost:      f.PerHost,
		MaxInFlight:     f.Concurrency,
		FetchTimeout:    f.Timeout.Duration + f.ConnectTimeout.Duration,
		StapleUnknown:   f.StapleUnknown,
		SelfFetchMargin: c.Fleet.selfFetchMargin(),
		Now:             now,
	}
}

// CertIDHash is the CertID hash of the requests the fetcher sends, and so of the responses it gets: SHA-256
// with sha256 = true, else SHA-1.
func (f Fetch) CertIDHash() crypto.Hash {
	if f.SHA256 {
		return crypto.SHA256
	}
	return crypto.SHA1
}

// FleetConfig returns the fleet package's configuration of the [fleet] table.
func (c *Config) FleetConfig(log zerolog.Logger) fleet.Config {
	f := c.Fleet
	return fleet.Config{
		Endpoints: f.Endpoints, Prefix: f.Prefix,
		CertFile: f.CertFile, KeyFile: f.KeyFile, CAFile: f.CAFile,
		Username: f.Username, Password: f.Password,
		LeaseTTL: f.LeaseTTL.Duration, UnservedAfter: f.unservedAfter(),
		Logger: log.With().Str("component", "fleet").Logger(),
	}
}

// unservedAfter is fleet.Config's UnservedAfter from the [fleet] table: negative (never) when
// remove_unserved is false.
func (f Fleet) unservedAfter() time.Duration {
	if f.RemoveUnserved != nil && !*f.RemoveUnserved {
		return -1
	}
	return f.UnservedAfter.Duration
}

// selfFetchMargin is the stapler's SelfFetchMargin from the [fleet] table.
func (f Fleet) selfFetchMargin() time.Duration {
	if f.SelfFetch != nil && !*f.SelfFetch {
		return -1
	}
	return f.SelfFetchMargin.Duration
}
