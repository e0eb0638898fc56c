// Package harness is what the end-to-end tests of package e2e share: the staple binary TestMain builds
// (Binary) and running it (Staple, MustStaple), processes started by a test and their logs (Start,
// Process), free ports, waiting for a condition, a lab made by staple with a configuration serving it
// (LabFixture), openssl s_client -status (SClient), and the table of interop outcomes printed at the end
// (Outcome, PrintSummary). A helper that one test file uses stays in that file; those that only the
// interop suite shares are in e2e/interop_helpers_test.go.
package harness
