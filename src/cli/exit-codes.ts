/**
 * dbgate's exit codes, decided once for every command (and listed in docs/configuration.md) so
 * scripts can tell "fix your config or command line" from "something failed".
 */
export const EXIT_OK = 0
/** Anything unexpected. */
export const EXIT_FAILURE = 1
/** Bad configuration file, missing secret, unknown target, or bad flags (oclif's own default for usage errors). */
export const EXIT_USAGE = 2
