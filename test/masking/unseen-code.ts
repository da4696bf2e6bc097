/**
 * The setting for attacks with code the analysis cannot see into (DO blocks, functions that run
 * dynamic SQL): the masking fixture's database, a tunnel with the policy pack `none`, and a relay
 * that records every byte a client receives.
 */
import type pg from 'pg'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {maskingFixture, type MaskingFixture} from './fixture.js'
import {all, recordingRelay, relayedClient, type Seen} from './relay.js'

/** How a test sends one step (some steps name the protocol to use). */
export type Send = (c: pg.Client, sql: string) => Promise<pg.QueryResult | pg.QueryResult[]>

export const simpleSend: Send = (c, sql) => c.query(sql) as Promise<pg.QueryResult | pg.QueryResult[]>

export function rowsOf(r: pg.QueryResult | pg.QueryResult[]): unknown {
  return Array.isArray(r) ? r.map((x) => x.rows) : r.rows
}

export interface Steps {
  /** What the client received, byte for byte, with its notices. */
  seen: Buffer
  rows: unknown[]
  /** `<step>: <error>` for each step that failed. */
  errors: string[]
}

export interface UnseenCodeTunnel {
  fx: MaskingFixture
  tunnel: PipelineTunnel
  /** Runs `steps` in one new session through the relay. */
  run(steps: readonly string[], send?: Send): Promise<Steps>
  close(): Promise<void>
}

/** The fixture, with `functions` created in its database first. */
export async function openUnseenCodeTunnel(functions: readonly string[] = []): Promise<UnseenCodeTunnel> {
  const fx = await maskingFixture()
  await withClient(fx.db.url, async (c) => {
    for (const f of functions) await c.query(f)
  })
  const tunnel = await openPipelineTunnel(fx.db, 'policy: none')
  const relay = await recordingRelay(tunnel.info.port)
  return {
    fx,
    tunnel,
    async run(steps, send = simpleSend) {
      const seen: Seen = {bytes: [], strings: []}
      const c = await relayedClient(tunnel.info.url, relay, seen)
      const rows: unknown[] = []
      const errors: string[] = []
      for (const sql of steps) {
        try {
          rows.push(rowsOf(await send(c, sql)))
        } catch (error) {
          errors.push(`${sql}: ${String(error)}`)
        }
      }
      await c.end()
      return {seen: all(seen), rows, errors}
    },
    async close() {
      await relay.close()
      await tunnel.close().catch(() => {})
      await fx.close()
    },
  }
}
