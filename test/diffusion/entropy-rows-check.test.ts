/**
 * The sampler's exactness over device row statistics (src/ops/entropy-rows.ts ambiguousRows,
 * src/ops/diffusion-entropy.ts): which rows a step must recompute from their logits, and a whole
 * generation over a model whose device statistics are deliberately off (entropies moved within
 * generous error bounds, a third of the tokens wrong and flagged unsure) giving the host path's
 * tokens exactly, while recomputing only some rows.
 */
import { describe, expect, it } from 'vitest';
import {
  acceptByEntropy,
  entropyBoundGenerate,
  type BlockDiffusionModel,
  type DenoisedRows,
  type EntropyBoundRun,
} from '../../src/ops/diffusion-entropy.ts';
import { ambiguousRows, entropyRowStats, type RowStats } from '../../src/ops/entropy-rows.ts';

function stats(H: number[], e: number[], sure?: number[]): RowStats {
  const n = H.length;
  return {
    argmax: new Uint32Array(n),
    token: new Uint32Array(n),
    entropy: Float64Array.from(H),
    entropyError: Float64Array.from(e),
    tokenSure: Uint8Array.from(sure ?? new Array<number>(n).fill(1)),
  };
}

const open = (s: RowStats, bound: number, stopAt: number | null = null) =>
  ambiguousRows(s, acceptByEntropy(s.entropy, bound), bound, stopAt);

describe('ambiguousRows', () => {
  it('leaves exact rows, and inexact ones far from every decision, alone', () => {
    expect(open(stats([0.3, 0.01, 0.2], [0, 0, 0]), 0.1, 0.005)).toEqual([]);
    expect(open(stats([0.01, 0.02, 0.5, 0.6], [1e-3, 1e-3, 1e-3, 1e-3]), 0.1)).toEqual([]);
  });

  it('lists an unsure token', () => {
    expect(open(stats([0.01, 0.5], [0, 0], [1, 0]), 0.1)).toEqual([1]);
  });

  it('lists the rows straddling the accepted set’s edge', () => {
    // Sorted 0.01, 0.3, 0.3005: the first two accepted, the third not, within each other's error.
    expect(open(stats([0.01, 0.3, 0.3005], [1e-3, 1e-3, 1e-3]), 0.1)).toEqual([1, 2]);
  });

  it('lists the accepted rows when a sum sits within their errors of the bound', () => {
    // 0 + 0.05 ≤ 0.0502 accepts the 0.06 row, but 0.05 ± 1e-3 could exceed it.
    expect(open(stats([0, 0.05, 0.06], [0, 1e-3, 1e-3]), 0.0502)).toEqual([1, 2]);
    // The first rejected row: 0.0502 + 0.03 > 0.08, but within the errors.
    expect(open(stats([0.0502, 0.03, 0.5], [1e-3, 1e-3, 0]), 0.08)).toEqual([0, 1]);
  });

  it('lists every inexact row when the mean entropy sits at the stop threshold', () => {
    expect(open(stats([0.0049, 0.0049, 0.0052], [2e-4, 2e-4, 0]), 0.1, 0.005)).toEqual([0, 1]);
    // Not stable: no stop test.
    expect(open(stats([0.0049, 0.0049, 0.0052], [2e-4, 2e-4, 0]), 0.1, null)).toEqual([]);
  });
});

const VOCAB = 40;
const C = 8;

/** A deterministic xorshift stream from a seed. */
function stream(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

/**
 * A denoiser without weights: each row's logits a function of the canvas (so that the
 * generation depends on every step's decisions), some rows peaked and some flat.
 */
function logitsOf(canvas: Uint32Array): Float32Array {
  const out = new Float32Array(canvas.length * VOCAB);
  for (let p = 0; p < canvas.length; p++) {
    const r = stream(canvas[p] * 7919 + p * 104729 + 1);
    const peak = r() < 0.6 ? 2 + 10 * r() : 0;
    const top = Math.floor(r() * VOCAB);
    for (let v = 0; v < VOCAB; v++) out[p * VOCAB + v] = 2 * r() + (v === top ? peak : 0);
  }
  return out;
}

/** The host path's model, and one with device statistics that are off within their bounds. */
function models(): { host: BlockDiffusionModel; device: BlockDiffusionModel } {
  const host: BlockDiffusionModel = {
    vocab: VOCAB,
    encode: async () => {},
    denoise: async (canvas) => logitsOf(canvas),
  };
  const device: BlockDiffusionModel = {
    ...host,
    async denoiseRows(canvas, _sc, t, noise, withLogits): Promise<DenoisedRows> {
      const logits = logitsOf(canvas);
      const n = canvas.length;
      const r = stream(noise.draw + 99);
      const out: DenoisedRows = {
        argmax: new Uint32Array(n),
        token: new Uint32Array(n),
        entropy: new Float64Array(n),
        logits: withLogits ? logits : null,
        self: { logits: null, temperature: t },
        check: {
          entropyError: new Float64Array(n),
          tokenSure: new Uint8Array(n),
          rowLogits: async (p) => logits.slice(p * VOCAB, (p + 1) * VOCAB),
        },
      };
      for (let p = 0; p < n; p++) {
        const s = entropyRowStats(logits, p, VOCAB, t, noise);
        const e = t === 0 ? 0 : 0.05 * s.entropy + 1e-3;
        out.argmax[p] = s.argmax;
        out.entropy[p] = s.entropy + (2 * r() - 1) * e;
        out.check!.entropyError[p] = e;
        const wrong = t > 0 && p % 3 === 0;
        out.token[p] = wrong ? (s.token + 1) % VOCAB : s.token;
        out.check!.tokenSure[p] = wrong ? 0 : 1;
      }
      return out;
    },
  };
  return { host, device };
}

const RUN: EntropyBoundRun = {
  canvasLength: C,
  genLength: 3 * C,
  maxSteps: 6,
  tMin: 0.4,
  tMax: 0.8,
  entropyBound: 1.5,
  stabilityThreshold: 1,
  confidenceThreshold: 0.3,
  eos: [],
  pad: null,
  seed: 5,
};

describe('entropy_bound generation over device statistics', () => {
  for (const run of [RUN, { ...RUN, tMin: 0, tMax: 0 }]) {
    it(`gives the host path's tokens (t ${run.tMax === 0 ? '= 0' : '> 0'})`, async () => {
      const { host, device } = models();
      const want = await entropyBoundGenerate(host, [1, 2, 3], run);
      let recomputed = 0;
      let steps = 0;
      const got = await entropyBoundGenerate(device, [1, 2, 3], run, {
        onStep: (s) => {
          recomputed += s.recomputed;
          steps++;
        },
      });
      expect(Array.from(got)).toEqual(Array.from(want));
      if (run.tMax === 0) expect(recomputed).toBe(0);
      else {
        // The unsure tokens at least, but not every row of every step.
        expect(recomputed).toBeGreaterThanOrEqual(Math.ceil(C / 3) * steps);
        expect(recomputed).toBeLessThan(C * steps);
      }
    });
  }
});
