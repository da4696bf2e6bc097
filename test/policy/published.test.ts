import {readdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {beforeAll, describe, expect, it} from 'vitest'
import {FileBucket} from '../../src/bucket/file.js'
import {resolvePolicy, PolicyStoreError} from '../../src/policy/published.js'
import {loadKeyRing} from '../../src/audit/signing.js'
import {isolatedEnv, loadedConfig} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'

const BIN = path.resolve('bin/run.js')

/** Central policy: an admin publishes, every engineer's tunnel runs it, whatever their local file says. */
describe('published policy', () => {
  let db: UpstreamInfo
  let env: NodeJS.ProcessEnv
  let adminConfig: string
  let engineerConfig: string
  let bucketDir: string

  const target = (rules: string) =>
    `targets:\n  app:\n    host: ${db.host}\n    port: ${db.port}\n    database: ${db.database}\n    user: ${db.user}\n    password: env:APP_DB_PASSWORD\n    tls: disable\n${rules}`

  beforeAll(async () => {
    db = await createTestDatabase()
    await withClient(db.url, (c) => c.query("create table salaries (id int, amount int); insert into salaries values (1, 100)"))
    env = {...isolatedEnv(), APP_DB_PASSWORD: db.password, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: ''}
    bucketDir = path.join(env.HOME!, 'shared-bucket')
    adminConfig = path.join(env.HOME!, 'admin.yaml')
    engineerConfig = path.join(env.HOME!, 'engineer.yaml')
    await writeFile(adminConfig, `bucket: file://${bucketDir}\n` + target('    rules:\n      - id: no-salaries\n        match: {tables: [salaries]}\n        action: deny\n        reason: salaries are HR-only\n'))
    await writeFile(engineerConfig, `bucket: file://${bucketDir}\n` + target(''))
  })

  const query = ['--', 'psql', '-X', '-At', '-c', 'select amount from salaries']

  it('is published signed and versioned, and tunnels run it instead of the local file', async () => {
    const before = await run('node', [BIN, 'connect', 'app', '--config', engineerConfig, ...query], {env})
    expect(before.stdout.trim()).toBe('100')

    const pub = await run('node', [BIN, 'policy', 'publish', 'app', '--config', adminConfig], {env})
    expect(pub.stderr).toBe('')
    expect(pub.stdout).toMatch(/^published app v1 \(sha256 [0-9a-f]{12}…\)/)
    const again = await run('node', [BIN, 'policy', 'publish', 'app', '--config', adminConfig], {env})
    expect(again.stdout).toMatch(/^published app v2 /)
    expect((await readdir(path.join(bucketDir, 'policies', 'app'))).sort()).toEqual(['v000001.json', 'v000002.json'])

    const after = await run('node', [BIN, 'connect', 'app', '--config', engineerConfig, ...query], {env})
    expect(after.stderr).toMatch(/denied by rule no-salaries: salaries are HR-only/)
    expect(after.code).not.toBe(0)

    const override = await run('node', [BIN, 'connect', 'app', '--config', engineerConfig, '--local-policy', ...query], {env})
    expect(override.stdout.trim()).toBe('100')
    expect(override.stderr).toMatch(/--local-policy/)

    const shown = await run('node', [BIN, 'sessions', 'list', '--json', '--config', engineerConfig], {env})
    const {sessions} = JSON.parse(shown.stdout) as {sessions: {policy?: {version?: string}}[]}
    const versions = sessions.map((s) => s.policy?.version).sort()
    expect(versions).toEqual(['local', 'local (override; published v2 ignored)', 'v2 (published)'])
  })

  it('refuses a published policy that was edited in the bucket', async () => {
    const file = path.join(bucketDir, 'policies', 'app', 'v000002.json')
    const original = await readFile(file, 'utf8')
    await writeFile(file, original.replace('"deny"', '"allow"'))
    try {
      const r = await run('node', [BIN, 'connect', 'app', '--config', engineerConfig, ...query], {env})
      expect(r.code).not.toBe(0)
      expect(r.stderr).toMatch(/refusing to open the tunnel: the published policy for app v2 fails its signature check/)
      expect(r.stdout).not.toMatch(/100/)
    } finally {
      await writeFile(file, original)
    }
  })

  it('runs the cached copy when the bucket cannot be reached', async () => {
    const bucket = new FileBucket(bucketDir)
    const cacheDir = path.join(env.HOME!, 'policy-cache')
    const loaded = loadedConfig(db)
    const online = await resolvePolicy({bucket, loadKeys: async () => (await loadKeyRing(bucket)).keys, target: loaded.config.targets.app!, cacheDir})
    expect(online.source).toBe('published')
    const down = {...bucket, list: () => ({[Symbol.asyncIterator]: () => ({next: () => Promise.reject(new Error('connect ECONNREFUSED'))})}), get: () => Promise.reject(new Error('down'))}
    const offline = await resolvePolicy({bucket: down as unknown as FileBucket, loadKeys: () => Promise.reject(new Error('down')), target: loaded.config.targets.app!, cacheDir})
    expect(offline).toMatchObject({source: 'cached', version: 'v2 (cached)'})
    expect(offline.target.rules.map((r) => r.id)).toEqual(['no-salaries'])

    const cacheFile = path.join(cacheDir, 'app.json')
    const saved = JSON.parse(await readFile(cacheFile, 'utf8')) as {policy: string}
    saved.policy = saved.policy.replace('"deny"', '"allow"')
    await writeFile(cacheFile, JSON.stringify(saved))
    await expect(resolvePolicy({bucket: down as unknown as FileBucket, loadKeys: () => Promise.reject(new Error('down')), target: loaded.config.targets.app!, cacheDir})).rejects.toBeInstanceOf(PolicyStoreError)
  })
})
