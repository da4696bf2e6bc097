import {mkdir, readdir, readFile, writeFile} from 'node:fs/promises'
import {dirname, join, relative} from 'node:path'
import ts from 'typescript'

const root = join(import.meta.dirname, '..', '..')

/**
 * Transpiles the modules a child process needs into plain ESM under node_modules/.cache, so the
 * child runs the real recorder with plain `node` (Node 20 cannot run .ts, and no loader is
 * installed). Per-file transpiling does not type-check, so it does not depend on the rest of the
 * tree compiling; bare imports resolve through the repository's node_modules.
 */
export async function transpileForChild(dirs = ['src/audit', 'src/bucket', 'src/sql', 'src/util'], files = ['src/identity/types.ts', 'src/proxy/seam.ts']): Promise<string> {
  const out = join(root, 'node_modules', '.cache', `dbgate-test-${process.pid}-${Date.now()}`)
  const sources = [...files]
  for (const d of dirs) for (const f of await readdir(join(root, d))) if (f.endsWith('.ts')) sources.push(join(d, f))
  for (const src of sources) {
    const text = await readFile(join(root, src), 'utf8')
    const js = ts.transpileModule(text, {compilerOptions: {module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022}}).outputText
    const dest = join(out, relative('.', src)).replace(/\.ts$/, '.js')
    await mkdir(dirname(dest), {recursive: true})
    await writeFile(dest, js)
  }
  return join(out, 'src')
}
