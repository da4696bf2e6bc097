import {readFile, stat} from 'node:fs/promises'
import {basename} from 'node:path'
import {Args, Flags} from '@oclif/core'
import chalk from 'chalk'
import {listFilters, readKeyFiles, resolveBucket, resolveSignerTrust} from '../../audit/cli.js'
import {unmatchedSigners} from '../../audit/trust.js'
import {bucketFlags, filterFlags, signerFlag} from '../../cli/flags.js'
import {SessionReader} from '../../audit/read.js'
import {inflate, MAX_LOG_BYTES, UnreadableObjectError, type SessionSummary} from '../../audit/index-cache.js'
import {loadKeyRing, type KeyRing} from '../../audit/signing.js'
import {flagDuplicateSessions, splitConcatenatedSessions, unreadableObjectResult, verifySession, type VerifyResult} from '../../audit/verify.js'
import {UsageError} from '../../cli/errors.js'
import {visible} from '../../util/visible.js'
import {DbgateCommand} from '../../cli/base-command.js'
import {EXIT_FAILURE} from '../../cli/exit-codes.js'

interface Checked extends VerifyResult {
  source: string
}

export default class SessionsVerify extends DbgateCommand {
  static override summary = 'Prove sessions were not altered, reordered or truncated.'
  static override description = `Checks every line's hash, the chain from line to line, and each Ed25519 signature against the public keys published in the bucket (keys/<key-id>.json) or given with --key. Every problem is reported with its line and seq. Exits 1 if any session has a problem. An object under sessions/ that cannot be read as a session log at all (not gzip, cut short, empty, too large, no dbgate event in it, a key that does not parse) fails as OBJECT_UNREADABLE, named by its key, and every other session is still verified.

With --signer (or recording.trustedSigners in the configuration) only the named keys may sign: a session signed by any other key fails with UNTRUSTED_SIGNER, naming the key that signed it and the trusted ones.

Works offline: copy the bucket (or an export and the key files) anywhere and point --bucket or --file and --key at the copy.`
  static override examples = [
    '$ dbgate sessions verify --since 30d',
    '$ dbgate sessions verify 3f2a9c',
    '$ dbgate sessions verify --file export.jsonl --key keys/9f1c….json',
    '$ dbgate sessions verify --since 30d --signer gw-prod',
  ]
  static override enableJsonFlag = true
  static override strict = false
  static override args = {sessions: Args.string({description: 'Session ids (or unique prefixes); default: every session the filters select.'})}
  static override flags = {
    ...bucketFlags,
    ...filterFlags,
    file: Flags.string({summary: 'Verify this local .jsonl or .jsonl.gz file instead of the bucket (repeatable).', multiple: true, helpValue: '<file>'}),
    key: Flags.string({summary: 'Trust this published key file instead of the bucket\'s keys/ (repeatable).', multiple: true, helpValue: '<key.json>'}),
    signer: signerFlag,
    all: Flags.boolean({summary: 'Verify every session in the bucket (what happens anyway when no ids or filters are given).', exclusive: ['file']}),
  }

  async run(): Promise<{ok: boolean; sessions: Checked[]; keyErrors: {key: string; message: string}[]}> {
    const {argv, flags} = await this.parse(SessionsVerify)
    if (flags.all && argv.length > 0) throw new UsageError('give session ids or --all, not both')
    const needBucket = !flags.file || !flags.key
    const bucket = needBucket ? (await resolveBucket(flags, this)).bucket : undefined
    let keys: KeyRing
    let keyErrors: {key: string; message: string}[] = []
    if (flags.key) {
      keys = await readKeyFiles(flags.key)
    } else {
      ;({keys, errors: keyErrors} = await loadKeyRing(bucket!))
    }
    for (const e of keyErrors) this.logToStderr(`warning: ${visible(e.key)}: ${visible(e.message)}`)
    const trust = await resolveSignerTrust(flags, this)
    if (trust) for (const name of unmatchedSigners(trust, keys)) this.logToStderr(`warning: trusted signer ${name} matches no published key`)

    const checked: Checked[] = []
    if (flags.file) {
      for (const path of flags.file) {
        let text: string
        try {
          text = await readLogFile(path)
        } catch (err) {
          // A downloaded object can be what the bucket held: a gzip bomb, a cut or damaged gzip. It
          // fails on its own, as it does read from the bucket, and the other files are still verified.
          if (!(err instanceof UnreadableObjectError)) throw err
          checked.push({source: basename(path), ...unreadableObjectResult(err.problem)})
          continue
        }
        // An export may hold several sessions back to back; each is verified on its own.
        for (const [i, part] of splitConcatenatedSessions(text).entries()) checked.push({source: `${basename(path)}${i ? `#${i + 1}` : ''}`, ...verifySession(part, keys, {trust})})
      }
      checked.splice(0, checked.length, ...flagDuplicateSessions(checked))
    } else {
      const reader = new SessionReader(bucket!)
      const ids = argv as string[]
      const summaries: SessionSummary[] = []
      const unreadable: {key: string; problem: string}[] = []
      if (ids.length) {
        for (const id of ids) {
          try {
            // Every object holding the session: a copy under another key fails with OBJECT_KEY_MISMATCH beside the placed one.
            summaries.push(...(await reader.copiesOf(id)))
          } catch (err) {
            if (!(err instanceof UnreadableObjectError)) throw err
            unreadable.push({key: err.key, problem: err.problem})
          }
        }
      } else {
        const listing = await reader.listing(listFilters(flags))
        summaries.push(...listing.sessions)
        unreadable.push(...listing.unreadable)
      }
      for (const s of summaries) {
        let text: string
        try {
          ;({text} = await reader.loadSummary(s))
        } catch (err) {
          // Replaced since it was listed, by something that cannot be read.
          if (!(err instanceof UnreadableObjectError)) throw err
          checked.push({source: s.key, ...unreadableObjectResult(err.problem)})
          continue
        }
        checked.push({source: s.key, ...verifySession(text, keys, {trust, objectKey: s.key})})
      }
      // One FAIL each, after the sessions: the key names it, since its content says nothing.
      for (const u of unreadable) checked.push({source: u.key, ...unreadableObjectResult(u.problem)})
    }

    for (const r of checked) {
      const head = r.ok ? chalk.green('OK  ') : chalk.red('FAIL')
      // A forged log chooses its session id, event types and key ids: none of it may overwrite the FAIL on the auditor's terminal.
      this.log(`${head} ${visible(r.sessionId ?? '?')} ${r.status}, ${r.lines} lines, signed through seq ${r.signedThroughSeq} (${visible(r.source)})`)
      for (const p of r.problems) this.log(`     line ${p.line}${p.seq !== undefined ? ` seq ${p.seq}` : ''} ${p.code}: ${visible(p.message)}`)
    }
    const ok = checked.every((r) => r.ok) && keyErrors.length === 0
    if (checked.length === 0) this.logToStderr('No sessions to verify.')
    if (!ok) process.exitCode = EXIT_FAILURE
    return {ok, sessions: checked, keyErrors}
  }
}

/** A log file given with --file, read as the bucket's objects are: gzip inflated, at most MAX_LOG_BYTES either way. */
async function readLogFile(path: string): Promise<string> {
  const {size} = await stat(path)
  if (size > MAX_LOG_BYTES) throw new UnreadableObjectError(path, `${Math.round(size / (1024 * 1024))} MiB, more than the ${MAX_LOG_BYTES / (1024 * 1024)} MiB dbgate reads of one log`)
  const raw = await readFile(path)
  return (path.endsWith('.gz') ? inflate(path, raw) : raw).toString('utf8')
}
