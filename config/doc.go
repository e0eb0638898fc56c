// Package config owns staple serve's configuration: the TOML file and the flags laid over it, its keys and
// their defaults, the checks that refuse a bad one with one line naming the file, the line and the key
// ("staple.toml:12: site[1].cert: ..."), and its translation into the parts' own configurations: the
// engine's (StaplerConfig), which the service and the command line's cache commands both start from, and a
// fleet's (FleetConfig). It reads no certificate file: the service does, and reports at the same keys.
package config
