import {mkdtemp, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it, vi} from 'vitest'
import MaskingScan from '../../src/commands/masking/scan.js'
import type {ScanFinding} from '../../src/masking/scan.js'
import {maskingFixture, type MaskingFixture} from './fixture.js'

describe('dbgate masking scan', () => {
  let fx: MaskingFixture
  let configFile: string
  const saved = {...process.env}

  beforeAll(async () => {
    fx = await maskingFixture()
    const dir = await mkdtemp(path.join(tmpdir(), 'dbgate-scan-'))
    configFile = path.join(dir, 'dbgate.yaml')
    await writeFile(
      configFile,
      [
        'targets:',
        '  shop:',
        `    host: ${fx.db.host}`,
        `    port: ${fx.db.port}`,
        `    database: ${fx.db.database}`,
        `    user: ${fx.db.user}`,
        '    password: env:SHOP_DB_PASSWORD',
        '    tls: disable',
        '    masking:',
        '      mask: [public.orders.status]',
        '      unmaskColumns: [public.customers.phone]',
        '      strategies: {email: hash}',
        '',
      ].join('\n'),
    )
  })
  afterAll(async () => {
    await fx?.close()
  })
  afterEach(() => {
    process.env = {...saved}
    vi.restoreAllMocks()
  })

  function quiet(): string[] {
    process.env.SHOP_DB_PASSWORD = fx.db.password
    delete process.env.DBGATE_CONFIG
    const out: string[] = []
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out.push(String(chunk))
      return true
    })
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    // oclif's log goes through the console.
    vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void out.push(`${args.join(' ')}\n`))
    vi.spyOn(console, 'error').mockImplementation(() => undefined)
    return out
  }

  it('lists sensitive columns with category, reason and strategy as JSON', async () => {
    quiet()
    const found = (await MaskingScan.run(['shop', '--config', configFile, '--json'])) as ScanFinding[]
    const by = (t: string, c: string) => found.find((f) => f.table === t && f.column === c)
    expect(by('customers', 'email')).toEqual({schema: 'public', table: 'customers', column: 'email', type: 'text', category: 'email', reason: 'name matches /e?mail/', source: 'name', strategy: 'hash'})
    expect(by('customers', 'ssn')).toMatchObject({category: 'national_id', strategy: 'partial'})
    expect(by('payments', 'card_number')).toMatchObject({category: 'card'})
    expect(by('accounts', 'last_ip')).toMatchObject({category: 'ip_address', reason: 'name matches /ip|ip_address|remote_addr/'})
    expect(by('orders', 'status')).toMatchObject({source: 'config', reason: 'configured by mask: public.orders.status'})
    expect(by('customers', 'phone')).toBeUndefined()
    expect(by('orders', 'total_cents')).toBeUndefined()
  })

  it('prints one tab-separated line per sensitive column when piped', async () => {
    const out = quiet()
    await MaskingScan.run(['shop', '--config', configFile])
    const lines = out.join('').trim().split('\n')
    expect(lines).toContain('public.customers\temail\ttext\temail\thash\tname matches /e?mail/')
    expect(out.join('')).not.toContain('@example.com')
  })

  it('fails with a clear error when the target cannot be reached', async () => {
    quiet()
    process.env.SHOP_DB_PASSWORD = 'wrong password'
    await expect(MaskingScan.run(['shop', '--config', configFile])).rejects.toMatchObject({code: 'TARGET_AUTH_FAILED', message: expect.stringMatching(/target shop refused dbgate.s login as .*password authentication failed/), oclif: {exit: 1}})
  })
})
