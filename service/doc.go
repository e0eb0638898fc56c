// Package service wires staple serve: the configuration in, the parts built, run, reloaded on SIGHUP and
// drained on shutdown. It holds no logic of the data flow: the engine (stapler) keeps the staples, the
// state (service/state) keeps them at rest, and around them stand the service's parts, each a type of its
// own: the TLS front with the sites it serves by SNI (front.go, sites.go), the exports for nginx and
// HAProxy (exports.go, export.go), the metrics (metrics.go), the status page (status.go), the caching
// responder (responder.Cache) and, for the embedded default, the lab's responder (Options.Lab).
package service
