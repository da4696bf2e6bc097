import {randomBytes} from 'node:crypto'
import {constants as fsc} from 'node:fs'
import {link, lstat, mkdir, open, readdir, rename, stat, unlink} from 'node:fs/promises'
import type {Stats} from 'node:fs'
import {dirname, join, relative, sep} from 'node:path'
import {BucketError, BUCKET_ERROR, checkKey, INVALID_KEY, OBJECT_EXISTS, OBJECT_NOT_FOUND} from './errors.js'
import type {Bucket, GetResult, ObjectInfo, PutOptions} from './types.js'

const TMP_PREFIX = '.dbgate-tmp-'

/**
 * A bucket in a local directory. Writes go to a temp file in the target directory, are fsynced,
 * then renamed (or hard-linked, for create-exclusive) into place, so readers never see a partial
 * object and a crash leaves either the old object or the new one.
 */
export class FileBucket implements Bucket {
  readonly url: string

  constructor(readonly root: string) {
    this.url = `file://${root.endsWith('/') ? root : root + '/'}`
  }

  private path(key: string): string {
    checkKey(key)
    if (key.split('/').some((s) => s.startsWith(TMP_PREFIX))) {
      throw new BucketError(INVALID_KEY, `object key ${JSON.stringify(key)} uses a reserved name`, {key})
    }
    return join(this.root, ...key.split('/'))
  }

  async put(key: string, body: Buffer | string, opts: PutOptions = {}): Promise<ObjectInfo> {
    const target = this.path(key)
    const dir = dirname(target)
    await mkdir(dir, {recursive: true})
    const tmp = join(dir, `${TMP_PREFIX}${randomBytes(8).toString('hex')}`)
    const fh = await open(tmp, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o644)
    try {
      await fh.writeFile(body)
      await fh.sync()
    } finally {
      await fh.close()
    }
    try {
      if (opts.ifNoneMatch) {
        // link() fails with EEXIST atomically, unlike a stat-then-rename check.
        await link(tmp, target)
        await unlink(tmp)
      } else {
        await rename(tmp, target)
      }
    } catch (err) {
      await unlink(tmp).catch(() => undefined)
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new BucketError(OBJECT_EXISTS, `object ${key} already exists in ${this.url}`, {key})
      }
      throw wrap(err, key, this.url)
    }
    await syncDir(dir)
    return info(key, await stat(target))
  }

  async get(key: string): Promise<GetResult> {
    const p = this.path(key)
    try {
      // Stat after read would race a concurrent replace; read via one handle so body and etag agree.
      // Only regular files are objects: a symbolic link would read another file than the one listed,
      // and a FIFO would block the read (a non-blocking open, refused below, does not).
      const fh = await open(p, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK)
      try {
        const st = await fh.stat()
        if (!st.isFile()) throw notRegular(key, this.url)
        const body = await fh.readFile()
        return {body, info: info(key, st)}
      } finally {
        await fh.close()
      }
    } catch (err) {
      throw wrap(err, key, this.url)
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      return info(key, await stat(this.path(key)))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw wrap(err, key, this.url)
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    // Start the walk at the deepest directory the prefix names, then filter on the rest.
    const cut = prefix.lastIndexOf('/')
    const dirKey = cut >= 0 ? prefix.slice(0, cut) : ''
    const start = dirKey ? join(this.root, ...dirKey.split('/')) : this.root
    yield* this.walk(start, prefix)
  }

  private async *walk(dir: string, prefix: string): AsyncIterable<ObjectInfo> {
    let entries
    try {
      entries = await readdir(dir, {withFileTypes: true})
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR') return
      throw wrap(err, undefined, this.url)
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const e of entries) {
      if (e.name.startsWith(TMP_PREFIX)) continue
      const full = join(dir, e.name)
      const key = relative(this.root, full).split(sep).join('/')
      if (e.isDirectory()) {
        if (key.startsWith(prefix) || prefix.startsWith(key + '/')) yield* this.walk(full, prefix)
      } else if (key.startsWith(prefix)) {
        // Anything else under the prefix is listed too (a symbolic link, a FIFO): readers then find
        // it unreadable and say so, rather than never learning it is there.
        try {
          yield info(key, e.isFile() ? await stat(full) : await lstat(full))
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw wrap(err, key, this.url)
        }
      }
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await unlink(this.path(key))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw wrap(err, key, this.url)
    }
  }
}

function info(key: string, st: Stats): ObjectInfo {
  // Every write is a new inode (rename/link of a fresh temp file), so inode+size+mtime changes on any rewrite.
  const etag = `${st.ino.toString(16)}-${st.size.toString(16)}-${Math.round(st.mtimeMs).toString(16)}`
  return {key, size: st.size, etag, lastModified: st.mtime}
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename durable; some filesystems refuse to open directories for sync, which is fine.
  try {
    const fh = await open(dir, 'r')
    try {
      await fh.sync()
    } finally {
      await fh.close()
    }
  } catch {
    /* best effort: the object is already in place */
  }
}

function notRegular(key: string, url: string): BucketError {
  return new BucketError(BUCKET_ERROR, `${url}: ${key} is not a regular file (a symbolic link, FIFO, socket or device); dbgate reads objects only from regular files`, {key})
}

function wrap(err: unknown, key: string | undefined, url: string): BucketError {
  if (err instanceof BucketError) return err
  const e = err as NodeJS.ErrnoException
  // O_NOFOLLOW on a symbolic link.
  if (e.code === 'ELOOP' && key !== undefined) return notRegular(key, url)
  if (e.code === 'ENOENT' && key !== undefined) return new BucketError(OBJECT_NOT_FOUND, `object ${key} not found in ${url}`, {key})
  return new BucketError(BUCKET_ERROR, `${url}: ${e.code ?? 'error'} ${key ? `on ${key}` : ''}`.trim(), {
    key,
    cause: {name: e.name, code: e.code},
  })
}
