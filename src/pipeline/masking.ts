import {randomBytes} from 'node:crypto'
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {defaultKeyDir} from '../audit/signing.js'
import {MAX_ANALYZED_SQL, startMasking, type ClosableCatalogQuery, type MaskingFilterFactory, type MaskingRuntime} from '../masking/index.js'
import {ENGLISH_MESSAGES, englishMessages} from '../policy/assumed-settings.js'
import {sharedAnalysisCache, type PolicyVerdict, type StatementAnalysis} from '../policy/index.js'
import type {StatementContext} from '../proxy/seam.js'
import {databaseKey, onCatalogChanged} from './catalog-changes.js'
import type {PipelineLog, TunnelHooksContext} from './context.js'
import type {IdentityStage} from './identity.js'
import type {Stage} from './stage.js'

export interface MaskingStage extends Stage {
  readonly name: 'masking'
  /** Masks sensitive values in free text, for the recording. */
  readonly maskText: (text: string) => string
  /** Masks a statement's bind parameters by where they go, for the recording. */
  readonly maskParams: MaskingFilterFactory['maskParams']
  /** Masks the values a statement's error quotes back, where its parameters are masked, for the recording. */
  readonly maskParamEchoes: MaskingFilterFactory['maskParamEchoes']
}

/**
 * Masks results as they leave the server. Masking reads the catalog once the tunnel knows who
 * connects: unmask groups decide what it does.
 */
export async function maskingStage(ctx: TunnelHooksContext, who: IdentityStage, catalogQuery: ClosableCatalogQuery): Promise<MaskingStage> {
  const log = ctx.log ?? (() => {})
  const masking = await startMasking({
    target: catalogQuery,
    masking: ctx.target.masking,
    identity: {groups: [...who.groups], kind: who.kind},
    hashKey: maskingHashKey(ctx.env ?? process.env),
    log: ctx.log,
  })
  // Another pipeline in front of the same database committed a change: read the catalog again (catalog-changes.ts).
  const stopListening = onCatalogChanged(databaseKey(ctx.target), ctx, masking.reread)
  return {
    name: 'masking',
    // Errors are masked by their English wording: a session whose server writes them in another language is refused.
    assumedSettings: [ENGLISH_MESSAGES],
    maskText: masking.factory.maskText,
    maskParams: masking.factory.maskParams,
    maskParamEchoes: masking.factory.maskParamEchoes,
    statement: maskability(masking, log),
    resultFilter: masking.hooks.resultFilter,
    onSessionStart: masking.hooks.onSessionStart,
    outputMemory: masking.hooks.outputMemory,
    onStatement: masking.hooks.onStatement,
    onIdle: masking.hooks.onIdle,
    onConnectionClosed: masking.hooks.onConnectionClosed,
    onUpstreamClosed: masking.hooks.onUpstreamClosed,
    dispose: () => {
      stopListening()
      return masking.close()
    },
  }
}

type Allowed = Extract<PolicyVerdict, {action: 'allow'}>

/**
 * Masking's part of judging a statement, once the stages before it have allowed it: a statement
 * that names relations or columns the catalog does not know, or reads views whose definitions
 * changed, waits for the catalog to be re-read, so its rows are masked against the current schema
 * (the common case needs no read and returns at once). Then, where a query's shape keeps masking
 * from following a sensitive column, policy decides (`masking.onUntraceable`).
 */
function maskability(masking: MaskingRuntime, log: PipelineLog): (sql: string, ctx: StatementContext, verdict: PolicyVerdict) => PolicyVerdict | Promise<PolicyVerdict> {
  /** The verdict, refused by masking with `message` and `hint`; what policy decided is kept for the recording. */
  const refused = (verdict: Allowed, message: string, hint: string): PolicyVerdict => ({
    action: 'reject',
    decision: verdict.decision,
    approval: verdict.approval,
    analysis: verdict.analysis,
    error: {severity: 'ERROR', code: '42501', message: `dbgate: ${message}`, hint},
  })
  const check = (sql: string, ctx: StatementContext, verdict: Allowed): PolicyVerdict => {
    const statements = verdict.judged ?? verdict.analysis?.statements ?? sharedAnalysisCache.analyze(sql, {}).statements
    const language = messagesLanguageChange(statements)
    if (language) return refused(verdict, `masking refuses setting lc_messages ${language}: ${ENGLISH_MESSAGES.why}`, "Leave lc_messages as it is, or set it to 'C' or an English locale.")
    const copies = sql.length > MAX_ANALYZED_SQL && !masking.factory.unmasked ? unfollowedCopy(statements) : undefined
    if (copies) {
      const kib = MAX_ANALYZED_SQL / 1024
      return refused(
        verdict,
        `masking cannot follow what this ${copies.what} copies into ${copies.into}: texts over ${kib} KiB are not analysed for masking, so a sensitive value it copies would read as clean afterwards`,
        `Send it in texts under ${kib} KiB (split a long IN list or a multi-row INSERT … SELECT); an INSERT of VALUES alone may be any size.`,
      )
    }
    const m = masking.factory.checkMaskable(sql, ctx)
    if (m.ok) return verdict
    if (m.refusal) return refused(verdict, m.refusal.message, m.refusal.hint)
    return refused(verdict, `masking cannot follow this query: ${m.reason}`, "Select the sensitive columns directly (they are masked), or ask for a group that may see them unmasked. The target's masking.onUntraceable decides whether untraceable output is masked or refused.")
  }
  return (sql, ctx, verdict) => {
    if (verdict.action !== 'allow') return verdict
    const fresh = masking.factory.ensureFresh(sql, ctx)
    if (!fresh) return check(sql, ctx, verdict)
    return fresh.then(
      () => check(sql, ctx, verdict),
      (e: Error) => {
        log('warn', `masking: could not re-read the catalog (${e.message}); what it does not know is masked as untraceable`)
        return check(sql, ctx, verdict)
      },
    )
  }
}

/**
 * The command of a statement that may copy values from a table into the one it writes (`UPDATE …
 * SET status = full_name`, `INSERT … SELECT`, MERGE, CREATE TABLE … AS), or somewhere lasting
 * that later reads take for clean (`COPY … TO` a server file or program; a rule, whose actions copy
 * on every write; a view, which a materialized view reading it may hold the old rows of; `ALTER
 * TABLE … ALTER COLUMN … TYPE … USING`, an UPDATE by another name), or
 * undefined: masking follows such copies in the texts it analyses, and marks the columns written,
 * but does not analyse texts over MAX_ANALYZED_SQL (the event loop would wait on the parse). An
 * INSERT of values alone (a bulk load) copies nothing from a table.
 */
function unfollowedCopy(statements: readonly StatementAnalysis[]): {what: string; into: string} | undefined {
  const table = 'the table it writes'
  for (const st of statements) {
    for (const o of st.operations) {
      if (o.command === 'create_table_as' || o.command === 'create_materialized_view') return {what: o.command === 'create_table_as' ? 'CREATE TABLE … AS' : 'CREATE MATERIALIZED VIEW', into: table}
      if (o.command === 'create_rule') return {what: 'CREATE RULE', into: 'the tables its actions write'}
      if (o.command === 'alter_table') return {what: 'ALTER TABLE', into: 'the columns it rewrites (ALTER COLUMN … TYPE … USING)'}
      if (o.command === 'create_view') return {what: 'CREATE VIEW', into: 'the materialized views that read it'}
      if (o.command === 'copy' && (o.flags.includes('program') || o.flags.includes('server_file')) && !o.tables.some((t) => t.access === 'write')) return {what: 'COPY … TO', into: 'the server file or program it writes'}
      if (o.class !== 'write') continue
      if (o.command === 'update' || o.command === 'merge') return {what: o.command.toUpperCase(), into: table}
      if (o.command === 'insert' && o.tables.some((t) => t.access === 'read')) return {what: 'INSERT … SELECT', into: table}
    }
  }
  return undefined
}

/** How a statement would move lc_messages off English (`to de_DE.UTF-8`, `to a value dbgate cannot read`), or undefined. */
function messagesLanguageChange(statements: readonly StatementAnalysis[]): string | undefined {
  for (const st of statements) {
    for (const o of st.operations) {
      // A setting the statement does not name (`set_config($1, $2, false)`, `UPDATE pg_settings`) may be this one.
      if (o.flags.includes('hidden_setting') || (o.command === 'set' && !o.setting)) return 'by a route that does not show which setting it changes'
      const s = o.setting
      if (!s || s.reset) continue
      const name = s.name.toLowerCase()
      // `RESET ALL` and `SET … TO DEFAULT` return to the value the session started with, checked then.
      if (name !== 'lc_messages') continue
      if (s.dynamic || s.value === undefined) return 'to a value dbgate cannot read'
      if (!englishMessages(s.value)) return `to ${s.value}`
    }
  }
  return undefined
}

/**
 * A per-installation key for the `hash` strategy, so the same value hashes alike in every tunnel
 * on this machine (joins and GROUP BY line up across sessions) without being guessable.
 */
function maskingHashKey(env: NodeJS.ProcessEnv): Buffer {
  const dir = defaultKeyDir(env)
  const file = path.join(dir, 'masking-hash.key')
  try {
    return readFileSync(file)
  } catch {
    mkdirSync(dir, {recursive: true, mode: 0o700})
    const key = randomBytes(32)
    try {
      writeFileSync(file, key, {mode: 0o600, flag: 'wx'})
      return key
    } catch {
      // Another tunnel created it first: use theirs.
      return readFileSync(file)
    }
  }
}
