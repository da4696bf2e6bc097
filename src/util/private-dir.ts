import {lstat, realpath, stat} from 'node:fs/promises'
import path from 'node:path'

/** A path and each directory above it, up to the root. */
function chainOf(dir: string): string[] {
  const chain = [dir]
  while (path.dirname(chain.at(-1)!) !== chain.at(-1)) chain.push(path.dirname(chain.at(-1)!))
  return chain
}

/**
 * Why another user could change what is in `dir`: it, or a directory above it, belongs to someone
 * other than this user or root, or others may write to it. A sticky directory above it (as /tmp
 * is) lets others add entries but not move ours, so it passes; `dir` itself passes sticky only with
 * `stickyDirOk` (a socket of ours in it cannot be moved aside, but a file others add is read as
 * ours wherever the directory's contents are trusted). Checked along the path as given and along
 * the path its symbolic links lead to. Undefined when no one else can, and where there are no uids.
 */
export async function sharedDirectoryProblem(dir: string, opts: {stickyDirOk: boolean}): Promise<string | undefined> {
  const uid = process.getuid?.()
  if (uid === undefined) return undefined
  const given = path.resolve(dir)
  const real = await realpath(given).catch(() => given)
  for (const at of new Set([...chainOf(given), ...chainOf(real)])) {
    const link = await lstat(at)
    const st = link.isSymbolicLink() ? await stat(at) : link
    for (const owner of new Set([link.uid, st.uid])) {
      if (owner !== uid && owner !== 0) return `${at} belongs to another user (uid ${owner}), who may replace what is in it`
    }
    const itself = at === given || at === real
    if ((st.mode & 0o022) !== 0 && ((st.mode & 0o1000) === 0 || (itself && !opts.stickyDirOk))) {
      const mode = (st.mode & 0o7777).toString(8).padStart(4, '0')
      return itself ? `other users may write to it (mode ${mode})` : `other users may write to ${at} (mode ${mode}) and replace the directory`
    }
  }
  return undefined
}
