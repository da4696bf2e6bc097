import {describe, expect, it} from 'vitest'
import {formatStep, runSteps, StepSkipped, type StepResult} from '../../src/demo/steps.js'

describe('runSteps', () => {
  it('reports passes, skips and the first failure, and does not run what depends on it', async () => {
    const ran: string[] = []
    const step = (title: string, run: () => Promise<string>) => ({title, run: () => (ran.push(title), run())})
    const seen: StepResult[] = []
    const results = await runSteps(
      [
        step('one', async () => 'fine'),
        step('two', async () => {
          throw new StepSkipped('masking not available in this build')
        }),
        step('three', async () => {
          throw new Error('boom\n  with detail')
        }),
        step('four', async () => 'never'),
      ],
      (r) => seen.push(r),
    )
    expect(ran).toEqual(['one', 'two', 'three'])
    expect(seen).toEqual(results)
    expect(results.map(formatStep)).toEqual([
      '✓ one: fine',
      '– two: skipped: masking not available in this build',
      '✗ three: boom with detail',
      '✗ four: not run: "three" failed',
    ])
  })
})
