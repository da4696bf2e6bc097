/**
 * Every exit code dbgate uses, decided once for all commands (docs/configuration.md lists them),
 * so scripts can tell "fix your command line or config" from "not allowed" from "it failed".
 * `dbgate connect <target> -- <command>` exits with the command's own code instead.
 */
export const EXIT_OK = 0
/** Anything else that failed: the database, the bucket or the IdP unreachable, a check that found problems. */
export const EXIT_FAILURE = 1
/** Fix your command line or configuration: unknown command or flag, bad flag value, invalid config, unreadable secret, unknown target. */
export const EXIT_USAGE = 2
/** Who you are does not allow it: not signed in, sign-in expired or refused, not in an allowed or reviewer group. */
export const EXIT_AUTH = 4
/** Interrupted with Ctrl-C before it finished (128 + SIGINT, as shells report it). */
export const EXIT_INTERRUPTED = 130
/** A client command after `--` could not be run: not found (127) or not executable (126), as shells report it. */
export const EXIT_COMMAND_NOT_FOUND = 127
export const EXIT_COMMAND_NOT_EXECUTABLE = 126
