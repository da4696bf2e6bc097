/** Running a list of steps and reporting each one's outcome, the way `dbgate demo --script` prints them. */

export type StepStatus = 'pass' | 'fail' | 'skip'

export interface StepResult {
  title: string
  status: StepStatus
  /** One line: what happened, why it was skipped, or what went wrong. */
  detail: string
}

/** Thrown by a step whose feature this build lacks: reported as skipped, never as passed. */
export class StepSkipped extends Error {
  override readonly name = 'StepSkipped'
}

export interface Step {
  title: string
  run(): Promise<string>
}

/**
 * Runs steps in order. Each builds on the ones before (no tunnel without a login, no audit
 * without a session), so after a failure the rest are reported as not run instead of failing
 * again for the same reason.
 */
export async function runSteps(steps: readonly Step[], onResult: (r: StepResult) => void): Promise<StepResult[]> {
  const results: StepResult[] = []
  let failed: string | undefined
  for (const step of steps) {
    let result: StepResult
    if (failed) {
      result = {title: step.title, status: 'fail', detail: `not run: "${failed}" failed`}
    } else {
      try {
        result = {title: step.title, status: 'pass', detail: await step.run()}
      } catch (error) {
        if (error instanceof StepSkipped) result = {title: step.title, status: 'skip', detail: `skipped: ${error.message}`}
        else {
          result = {title: step.title, status: 'fail', detail: oneLine(error instanceof Error ? error.message : String(error))}
          failed = step.title
        }
      }
    }
    results.push(result)
    onResult(result)
  }
  return results
}

export const STEP_MARK: Record<StepStatus, string> = {pass: '✓', fail: '✗', skip: '–'}

export function formatStep(r: StepResult): string {
  return `${STEP_MARK[r.status]} ${r.title}: ${r.detail}`
}

export function oneLine(text: string, max = 200): string {
  const s = text.replace(/\s+/g, ' ').trim()
  return s.length > max ? `${s.slice(0, max - 1)}…` : s
}
