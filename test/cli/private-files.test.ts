import {readdir, readFile, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import zlib from 'node:zlib'
import {beforeAll, describe, expect, it} from 'vitest'
import {isolatedEnv} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'

const BIN = path.resolve('bin/run.js')

/** Files under `top` another local user can read, walking down from `top` as they would (x on every directory, r on the file). */
async function readableByOthers(top: string): Promise<string[]> {
  const found: string[] = []
  const walk = async (dir: string): Promise<void> => {
    if (((await stat(dir)).mode & 0o001) === 0) return
    for (const entry of await readdir(dir, {withFileTypes: true})) {
      const p = path.join(dir, entry.name)
      if (entry.isDirectory()) await walk(p)
      else if (entry.isFile() && ((await stat(p)).mode & 0o004) !== 0) found.push(p)
    }
  }
  await walk(top).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e
  })
  return found
}

/**
 * Many systems give home directories mode 0755 (Debian and Ubuntu did for years), so what dbgate
 * keeps under ~/.local, ~/.config and ~/.cache is private only by its own modes. A session's
 * recording holds the statements as typed, literals included: the default bucket dbgate makes in
 * the person's data directory must not be readable by the machine's other users.
 */
describe("what dbgate connect leaves in the person's directories", () => {
  let db: UpstreamInfo
  let env: NodeJS.ProcessEnv
  beforeAll(async () => {
    db = await createTestDatabase()
    env = {...isolatedEnv(), APP_DB_PASSWORD: db.password, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: ''}
    const configPath = path.join(env.HOME!, 'dbgate.yaml')
    await writeFile(configPath, `targets:\n  app:\n    host: ${db.host}\n    port: ${db.port}\n    database: ${db.database}\n    user: ${db.user}\n    password: env:APP_DB_PASSWORD\n    tls: disable\n`)
    env.DBGATE_CONFIG = configPath
  })

  it('is readable by nobody else under the usual umask 022: recordings, keys, spool, caches', async () => {
    const literal = 'salary of jane.roe is 123456'
    const r = await run('sh', ['-c', `umask 022; exec node ${BIN} connect app -- psql -X -Atc "select '${literal}'"`], {env})
    expect(r.stdout, r.stderr).toContain(literal)
    // The sessions commands read the bucket and fill the cache too.
    expect((await run('sh', ['-c', `umask 022; exec node ${BIN} sessions search salary --json`], {env})).code).toBe(0)

    const bucket = path.join(env.XDG_DATA_HOME!, 'dbgate', 'bucket')
    const recorded = await readdir(bucket, {recursive: true, withFileTypes: true})
    const texts = await Promise.all(recorded.filter((e) => e.isFile()).map((e) => readFile(path.join(e.parentPath, e.name)).catch(() => Buffer.alloc(0))))
    // What is at stake: the statement, as typed, is in the recording.
    expect(texts.some((t) => t.toString('latin1').includes('jane.roe') || gunzipText(t).includes('jane.roe'))).toBe(true)

    const exposed = (await Promise.all(['XDG_DATA_HOME', 'XDG_STATE_HOME', 'XDG_CACHE_HOME', 'XDG_CONFIG_HOME'].map((v) => readableByOthers(path.join(env[v]!, 'dbgate'))))).flat()
    expect(exposed.map((p) => path.relative(env.HOME!, p))).toEqual([])
  })
})

function gunzipText(b: Buffer): string {
  try {
    return zlib.gunzipSync(b).toString('utf8')
  } catch {
    return ''
  }
}


