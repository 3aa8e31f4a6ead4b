/**
 * Block diffusion's GPU draw (codegen/kernels/block-draw.ts) against the host's drawToken
 * (src/ops/block-diffusion.ts), row by row: temperature 0 (the argmax without the mask id),
 * temperatures around 1 with and without a nucleus cut, a cut so small that one id survives,
 * rows with many ties at the nucleus edge, odd vocab sizes (not a multiple of the workgroup,
 * smaller than it), the mask id first, last and inside, and a row holding a NaN.
 *
 * Tolerance: tokens equal. The kernel's q, S and sums are f32 where the host's are f64, so a row
 * whose nucleus edge or best two noisy scores lie within f32 error could differ; these rows are
 * seeded, and none does (a mutation that keeps one tie too many, or drops the cut, fails them).
 */
import { describe, expect, it } from 'vitest';
import { blockDrawKernel } from '../../codegen/kernels/block-draw.ts';
import { NONFINITE_PICK } from '../../codegen/kernels/diffusion-pick.ts';
import { drawToken } from '../../src/ops/block-diffusion.ts';
import { runLaunch } from '../helpers/gpu.ts';
import { randn } from '../helpers/numeric.ts';

interface Case {
  vocab: number;
  maskId: number;
  temperature: number;
  nucleusP: number;
  rows: number;
  /** Logit scale (peaked rows spread the probabilities apart). */
  scale: number;
  /** Round logits to multiples of this, so many ids tie (0: no rounding). */
  tieStep?: number;
}

async function check(c: Case, seed: number): Promise<void> {
  const logits = randn(c.rows * c.vocab, seed, c.scale);
  if (c.tieStep)
    for (let i = 0; i < logits.length; i++)
      logits[i] = Math.round(logits[i] / c.tieStep) * c.tieStep;
  const positions = Uint32Array.from({ length: c.rows }, (_, r) => 7 + 3 * r);
  const step = 11;
  const got = await runLaunch(blockDrawKernel(c.vocab, c.maskId), {
    inputs: { logits, positions: new Float32Array(positions.buffer) },
    outputs: { picks: c.rows },
    step: { T: c.rows, pos: 0, L: 1 },
    sampling: { seed: 1234, draw: step, temperature: c.temperature, topK: 0, topP: c.nucleusP },
  });
  const picks = new Uint32Array(got.picks.buffer);
  const want = Array.from({ length: c.rows }, (_, r) =>
    drawToken(logits, r, c.vocab, {
      seed: 1234,
      step,
      position: positions[r],
      temperature: c.temperature,
      nucleusP: c.nucleusP,
      maskId: c.maskId,
    }),
  );
  expect(Array.from(picks)).toEqual(want);
}

const cases: Case[] = [
  { vocab: 1000, maskId: 999, temperature: 0, nucleusP: 0.9, rows: 5, scale: 2 },
  { vocab: 1000, maskId: 999, temperature: 1, nucleusP: 1, rows: 6, scale: 2 },
  { vocab: 1000, maskId: 0, temperature: 1, nucleusP: 0.9, rows: 8, scale: 2 },
  { vocab: 777, maskId: 300, temperature: 0.7, nucleusP: 0.5, rows: 8, scale: 3 },
  { vocab: 777, maskId: 300, temperature: 1.5, nucleusP: 0.95, rows: 8, scale: 1 },
  // Peaked rows and a tiny cut: one id (the most probable) survives.
  { vocab: 513, maskId: 512, temperature: 1, nucleusP: 0.01, rows: 6, scale: 4 },
  // Many ties: logits on a grid of 0.5, so the nucleus edge falls inside a tie group.
  { vocab: 1000, maskId: 17, temperature: 1, nucleusP: 0.9, rows: 10, scale: 1.5, tieStep: 0.5 },
  { vocab: 600, maskId: 5, temperature: 1, nucleusP: 0.3, rows: 10, scale: 1, tieStep: 1 },
  // A vocab smaller than the workgroup.
  { vocab: 37, maskId: 36, temperature: 1, nucleusP: 0.8, rows: 4, scale: 1.5 },
];

describe('block draw kernel', () => {
  cases.forEach((c, i) =>
    it(`matches drawToken: vocab ${c.vocab}, mask ${c.maskId}, T ${c.temperature}, nucleus ${c.nucleusP}${c.tieStep ? `, ties of ${c.tieStep}` : ''}`, () =>
      check(c, 40 + i)),
  );

  it('marks a row holding a NaN', async () => {
    const logits = randn(3 * 50, 9, 1);
    logits[50 + 7] = NaN;
    const got = await runLaunch(blockDrawKernel(50, 49), {
      inputs: { logits, positions: new Float32Array(3) },
      outputs: { picks: 3 },
      step: { T: 3, pos: 0, L: 1 },
      sampling: { seed: 1, draw: 0, temperature: 1, topK: 0, topP: 0.9 },
    });
    const picks = new Uint32Array(got.picks.buffer);
    expect(picks[1]).toBe(NONFINITE_PICK);
    expect(picks[0]).not.toBe(NONFINITE_PICK);
    expect(picks[2]).not.toBe(NONFINITE_PICK);
  });

  it('refuses a mask id outside the vocab', () => {
    expect(() => blockDrawKernel(50, 50)).toThrow(/mask id 50 is not a token of the vocab \(50\)/);
  });
});
