/**
 * V8 compiles the parser's WebAssembly with its baseline compiler (Liftoff) only. With the default
 * tier-up, the optimising compiler's work on the grammar's large functions leaves 100–140 MB of
 * freed-but-kept native memory in the process for good: a tunnel that had served pgbench and two
 * 1,000,000-row results held 298 MB RSS with 1,000 idle connections, 157 MB with this flag. The
 * price is about a fifth more CPU for a text whose shape is new (~20 µs on a ~90 µs analysis);
 * a statement of a known shape does not parse (docs/performance-history.md, "Idle memory: 1,000
 * idle connections", in the fourth round).
 *
 * The flag is process-wide and affects only WebAssembly compiled after it: this parser (libpg-query
 * compiles when it is imported, so parser.ts imports this module first) and the HTTP parser of
 * Node's own fetch (a few requests to the identity provider and the bucket).
 */
import {setFlagsFromString} from 'node:v8'

setFlagsFromString('--liftoff-only')
