// Package service owns the running staple service: its TOML configuration, and the wiring of the stapler,
// the TLS server, the caching responder, the admin socket, metrics and exports into one process that starts,
// reloads on SIGHUP and drains on shutdown.
//
// Configuration errors name the file, the line and the key ("staple.toml:12: site[1].cert: ...").
package service
