/**
 * The diffusion sampler's GPU pick against the host pick (pickRow): odd vocabs (1, not a
 * multiple of the workgroup, smaller than it), one row and several, temperature 0 and above,
 * every remasking mode (margin and entropy: Dream's), ties and a non-finite row.
 *
 * Tolerances: at temperature 0 the token is exact (the same f32 comparisons); above it, a row
 * whose two best noisy scores (host f64) lie within 1e-4 of each other may go either way
 * (f32 logs on the GPU), so such rows are skipped (and counted: few). Confidences: 2e-5
 * relative (f32 softmax against f64); `random` confidences are bit-exact (same 24-bit draw).
 */
import { describe, expect, it } from 'vitest';
import { diffusionPickKernel, NONFINITE_PICK } from '../../codegen/kernels/diffusion-pick.ts';
import { gumbel, pickRow, type Remasking } from '../../src/ops/diffusion.ts';
import { runLaunch } from '../helpers/gpu.ts';
import { randn } from '../helpers/numeric.ts';

interface Case {
  rows: number;
  vocab: number;
  temperature: number;
  remasking: Remasking;
  /** Canvas position of row 0. */
  pos: number;
  scale?: number;
}

async function gpuPicks(c: Case, logits: Float32Array, seed: number, step: number) {
  const launch = diffusionPickKernel(c.vocab, c.remasking);
  const out = await runLaunch(launch, {
    inputs: { logits },
    outputs: { picks: 2 * c.rows },
    step: { T: c.rows, pos: c.pos, L: 1 },
    sampling: { seed, draw: step, temperature: c.temperature, topK: 0, topP: 1 },
  });
  const words = new Uint32Array(out.picks.buffer);
  const conf = new Float32Array(out.picks.buffer);
  return Array.from({ length: c.rows }, (_, r) => ({
    token: words[2 * r],
    confidence: conf[2 * r + 1],
  }));
}

/** Gap between the host's best and second-best noisy score of a row. */
function margin(logits: Float32Array, r: number, c: Case, seed: number, step: number): number {
  let a = -Infinity;
  let b = -Infinity;
  for (let v = 0; v < c.vocab; v++) {
    const l = logits[r * c.vocab + v];
    const s = c.temperature > 0 ? l + c.temperature * gumbel(seed, step, c.pos + r, v) : l;
    if (s > a) [a, b] = [s, a];
    else if (s > b) b = s;
  }
  return a - b;
}

describe('diffusion pick kernel', () => {
  const cases: Case[] = [
    { rows: 1, vocab: 1, temperature: 0, remasking: 'low_confidence', pos: 0 },
    { rows: 1, vocab: 7, temperature: 0.9, remasking: 'low_confidence', pos: 3 },
    { rows: 3, vocab: 260, temperature: 0, remasking: 'low_confidence', pos: 5, scale: 4 },
    { rows: 5, vocab: 1001, temperature: 0.7, remasking: 'low_confidence', pos: 2 },
    { rows: 4, vocab: 300, temperature: 1, remasking: 'random', pos: 9 },
    { rows: 2, vocab: 513, temperature: 0, remasking: 'random', pos: 0 },
    { rows: 64, vocab: 97, temperature: 2, remasking: 'low_confidence', pos: 1, scale: 0.5 },
    { rows: 3, vocab: 1, temperature: 0, remasking: 'margin', pos: 0 },
    { rows: 6, vocab: 333, temperature: 0, remasking: 'margin', pos: 4, scale: 3 },
    { rows: 5, vocab: 700, temperature: 0.8, remasking: 'margin', pos: 2 },
    { rows: 6, vocab: 257, temperature: 0, remasking: 'entropy', pos: 1, scale: 3 },
    { rows: 4, vocab: 1001, temperature: 1, remasking: 'entropy', pos: 7 },
  ];
  for (const [i, c] of cases.entries()) {
    it(`rows ${c.rows} vocab ${c.vocab} T ${c.temperature} ${c.remasking}`, async () => {
      const seed = 40 + i;
      const step = 3 * i + 1;
      const logits = randn(c.rows * c.vocab, seed, c.scale ?? 2);
      const got = await gpuPicks(c, logits, seed, step);
      let skipped = 0;
      for (let r = 0; r < c.rows; r++) {
        const want = pickRow(logits, r, c.vocab, { ...c, seed, step, position: c.pos + r });
        if (c.temperature > 0 && margin(logits, r, c, seed, step) < 1e-4) {
          skipped++;
          continue;
        }
        expect(got[r].token, `row ${r}`).toBe(want.token);
        if (c.remasking === 'random') expect(got[r].confidence).toBe(Math.fround(want.confidence));
        // A margin may be near 0 and an entropy near 0 or large: f32 sums, absolute 1e-5 a unit.
        else if (c.remasking === 'margin' || c.remasking === 'entropy')
          expect(Math.abs(got[r].confidence - want.confidence)).toBeLessThan(
            1e-5 * Math.max(1, Math.abs(want.confidence)),
          );
        else
          expect(Math.abs(got[r].confidence - want.confidence) / want.confidence).toBeLessThan(
            2e-5,
          );
      }
      expect(skipped).toBeLessThanOrEqual(Math.ceil(c.rows / 16));
    });
  }

  it('takes the lowest id of a tie, and flags a row that is not finite', async () => {
    const c: Case = { rows: 3, vocab: 300, temperature: 0, remasking: 'low_confidence', pos: 0 };
    const logits = new Float32Array(3 * 300);
    logits[0 * 300 + 290] = 5;
    logits[0 * 300 + 17] = 5;
    logits[1 * 300 + 299] = 1;
    logits[2 * 300 + 100] = NaN;
    const got = await gpuPicks(c, logits, 1, 0);
    expect(got[0].token).toBe(17);
    expect(got[1].token).toBe(299);
    expect(got[2].token).toBe(NONFINITE_PICK);
    expect(got[0].confidence).toBeCloseTo(
      pickRow(logits, 0, 300, { ...c, seed: 1, step: 0, position: 0 }).confidence,
      6,
    );
    // A tie for the top is a margin of 0 on both sides.
    const m: Case = { ...c, remasking: 'margin' };
    const tied = await gpuPicks(m, logits, 1, 0);
    expect(tied[0].confidence).toBe(0);
    expect(pickRow(logits, 0, 300, { ...m, seed: 1, step: 0, position: 0 }).confidence).toBe(0);
  });
});
