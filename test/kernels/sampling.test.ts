import { describe, expect, it } from 'vitest';
import { sampleKernel } from '../../codegen/kernels/sampling.ts';
import type { SamplingParams } from '../../codegen/kernel-ir.ts';
import type { SamplingShape } from '../../src/graph/ops.ts';
import {
  NONFINITE_LOGITS,
  orderedKey,
  sample,
  sampleRow,
  uniformDraw,
} from '../../src/ops/sampling.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { randn, rng } from '../helpers/numeric.ts';

type Settings = Omit<SamplingParams, 'seed' | 'draw'>;

const SETTINGS: Settings[] = [
  { temperature: 0, topK: 0, topP: 1 },
  { temperature: 1, topK: 0, topP: 1 },
  { temperature: 0.7, topK: 40, topP: 1 },
  { temperature: 1, topK: 0, topP: 0.9 },
  { temperature: 0.8, topK: 50, topP: 0.95 },
  { temperature: 1.3, topK: 1, topP: 1 },
  { temperature: 1, topK: 0, topP: 1e-6 },
  { temperature: 2, topK: 3, topP: 0.5 },
  { temperature: 0.05, topK: 0, topP: 0.99 },
];

/** Random rows of several kinds: smooth, quantised (many exact ties), one dominant token. */
function logitRow(vocab: number, kind: number, seed: number): Float32Array {
  const x = randn(vocab, seed, 6);
  if (kind === 1) return x.map((v) => Math.round(v * 2) / 2);
  if (kind === 2) x[Math.floor(rng(seed + 1)() * vocab)] += 12;
  return x;
}

async function gpuSample(
  vocab: number,
  logits: Float32Array,
  L: number,
  sampling: SamplingParams,
): Promise<{ token: number; status: number; ids: Uint32Array }> {
  const { caps } = await testGpu();
  const { launches } = sampleKernel({ op: 'sample', vocab }, { caps, maxT: 1 });
  const ids = Uint32Array.of(0xdeadbeef, 5, 6);
  // token[1] starts non-zero so that a kernel which never writes the status word fails.
  const got = await runLaunches(launches, {
    inputs: { logits, ids, token: Uint32Array.of(0, 7) },
    step: { T: L, pos: 0, L },
    sampling,
  });
  const token = new Uint32Array(got.token.buffer);
  return { token: token[0], status: token[1], ids: new Uint32Array(got.ids.buffer) };
}

function cpuSample(vocab: number, logits: Float32Array, L: number, s: SamplingShape): number {
  const out = sample.reference(
    { op: 'sample', vocab },
    { logits },
    { T: L, pos: 0, L, sampling: s },
  );
  return out.token[0];
}

function softmax(x: ArrayLike<number>, temperature: number): number[] {
  const m = Math.max(...Array.from(x));
  const e = Array.from(x, (v) => Math.exp((v - m) / temperature));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** The kept set by definition (sorting, f64 sums), to check the bisection's threshold. */
function keptBySorting(row: Float32Array, s: Settings): Set<number> {
  const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b);
  let cut = row.length;
  if (s.topK > 0 && s.topK < row.length) {
    const kth = row[order[s.topK - 1]];
    cut = order.findIndex((i) => row[i] < kth);
    if (cut < 0) cut = row.length;
  }
  if (s.topP < 1) {
    const m = row[order[0]];
    const p = order.slice(0, cut).map((i) => Math.exp((row[i] - m) / s.temperature));
    const total = p.reduce((a, b) => a + b, 0);
    let acc = 0;
    let c = 0;
    while (c < cut && acc < Math.fround(s.topP) * total) acc += p[c++];
    const v = row[order[c - 1]];
    // Ties at the threshold value stay.
    while (c < cut && row[order[c]] === v) c++;
    cut = c;
  }
  return new Set(order.slice(0, cut));
}

describe('sampling: GPU kernel picks the same token as the CPU reference', () => {
  for (const vocab of [1, 2, 257, 1000, 50000]) {
    it(`vocab ${vocab}: ${SETTINGS.length} settings x 3 kinds of logits`, async () => {
      const mismatches: string[] = [];
      let sampled = 0;
      for (const [si, s] of SETTINGS.entries()) {
        for (let kind = 0; kind < 3; kind++) {
          // Large vocabularies are slow on SwiftShader: fewer kinds there.
          if (vocab === 50000 && kind !== si % 3) continue;
          const seed = 1000 * si + 17 * kind + vocab;
          const logits = logitRow(vocab, kind, seed);
          const params: SamplingParams = { ...s, seed: seed * 2654435761, draw: si * 31 + kind };
          const want = cpuSample(vocab, logits, 1, params);
          const got = await gpuSample(vocab, logits, 1, params);
          if (got.token !== want)
            mismatches.push(
              `${JSON.stringify(params)} kind ${kind}: gpu ${got.token}, cpu ${want}`,
            );
          expect(got.ids[0]).toBe(got.token);
          expect(got.status).toBe(0);
          expect(Array.from(got.ids.subarray(1))).toEqual([5, 6]);
          if (want !== sampleRow(logits, 0, vocab, { ...params, temperature: 0 }).token) sampled++;
        }
      }
      expect(mismatches).toEqual([]);
      // Non-greedy picks really happened (except where the vocab leaves no choice).
      if (vocab >= 257) expect(sampled).toBeGreaterThan(2);
    });
  }

  it('samples the last of L rows', async () => {
    const vocab = 300;
    const L = 3;
    const logits = new Float32Array(L * vocab);
    logits[0 * vocab + 3] = 5;
    logits[1 * vocab + 100] = 5;
    logits[2 * vocab + 271] = 5;
    for (const temperature of [0, 0.01]) {
      const params = { seed: 7, draw: 1, topK: 0, temperature, topP: 1 };
      expect((await gpuSample(vocab, logits, L, params)).token).toBe(271);
      expect(cpuSample(vocab, logits, L, params)).toBe(271);
    }
  });

  it('greedy ties go to the lowest index, across chunk boundaries', async () => {
    const vocab = 1000;
    const logits = randn(vocab, 5, 1);
    for (const i of [999, 700, 301, 300]) logits[i] = 4;
    const params = { seed: 0, draw: 0, topK: 0, temperature: 0, topP: 1 };
    expect((await gpuSample(vocab, logits, 1, params)).token).toBe(300);
    expect(cpuSample(vocab, logits, 1, params)).toBe(300);
  });

  it('flags a NaN or an Inf anywhere in the sampled row, and still writes a valid token', async () => {
    const vocab = 1000;
    const settings: SamplingParams[] = [
      { seed: 0, draw: 0, topK: 0, temperature: 0, topP: 1 },
      { seed: 3, draw: 1, topK: 40, temperature: 0.8, topP: 0.9 },
    ];
    // Chunk starts and interiors, both ends of the row, one bad value or a whole row of them.
    const cases: [string, (row: Float32Array) => void][] = [
      ['NaN at 0', (r) => (r[0] = NaN)],
      ['NaN inside a chunk', (r) => (r[517] = NaN)],
      ['+Inf at the end', (r) => (r[vocab - 1] = Infinity)],
      ['-Inf at a chunk start', (r) => (r[4 * 4] = -Infinity)],
      ['all NaN', (r) => r.fill(NaN)],
    ];
    for (const s of settings) {
      for (const [what, plant] of cases) {
        const L = 2;
        const logits = randn(L * vocab, 31, 3);
        plant(logits.subarray(vocab));
        const got = await gpuSample(vocab, logits, L, s);
        expect(got.status, `${what}, ${JSON.stringify(s)}`).toBe(NONFINITE_LOGITS);
        expect(got.token).toBeLessThan(vocab);
        expect(got.ids[0]).toBe(got.token);
        const cpu = sample.reference(
          { op: 'sample', vocab },
          { logits },
          { T: L, pos: 0, L, sampling: s },
        );
        expect(cpu.token[1], what).toBe(NONFINITE_LOGITS);
        expect(cpu.token[0]).toBeLessThan(vocab);
      }
      // A bad value in a row that is not sampled (row 0 of 2) is not this step's answer.
      const logits = randn(2 * vocab, 32, 3);
      logits[5] = NaN;
      expect((await gpuSample(vocab, logits, 2, s)).status).toBe(0);
      const cpu = sample.reference(
        { op: 'sample', vocab },
        { logits },
        { T: 2, pos: 0, L: 2, sampling: s },
      );
      expect(cpu.token[1]).toBe(0);
    }
  });

  it('top-k = 1 and a tiny top-p equal greedy, on the GPU and the CPU', async () => {
    for (let r = 0; r < 6; r++) {
      const vocab = [257, 1000, 4096][r % 3];
      const logits = randn(vocab, 900 + r, 4);
      const greedy = sampleRow(logits, 0, vocab, {
        seed: 0,
        draw: 0,
        topK: 0,
        temperature: 0,
        topP: 1,
      });
      for (const s of [
        { seed: r, draw: 3 * r, topK: 1, temperature: 1.5, topP: 1 },
        { seed: r, draw: 3 * r + 1, topK: 0, temperature: 1.5, topP: 1e-6 },
      ]) {
        expect(cpuSample(vocab, logits, 1, s)).toBe(greedy.token);
        expect((await gpuSample(vocab, logits, 1, s)).token).toBe(greedy.token);
      }
    }
  });
});

describe('sampling reference', () => {
  it('empirical frequencies follow the softmax at temperature 1', () => {
    const logits = Float32Array.of(1, 0.5, 0, -0.5, 2, -1, 1.5, 0.25);
    const p = softmax(logits, 1);
    const N = 20000;
    const counts = new Array<number>(logits.length).fill(0);
    for (let d = 0; d < N; d++) {
      counts[
        sampleRow(logits, 0, logits.length, { seed: 42, draw: d, topK: 0, temperature: 1, topP: 1 })
          .token
      ]++;
    }
    for (let i = 0; i < p.length; i++) {
      const sd = Math.sqrt((p[i] * (1 - p[i])) / N);
      expect(Math.abs(counts[i] / N - p[i])).toBeLessThan(5 * sd + 1e-3);
    }
  });

  it('top-k and temperature: renormalised softmax over the k best, nothing else', () => {
    const logits = Float32Array.of(0.3, 2, -1, 1.2, 1.9, 0, 0.8);
    const s = { topK: 3, temperature: 0.5, topP: 1 };
    const kept = [1, 3, 4];
    const p = softmax(
      kept.map((i) => logits[i]),
      0.5,
    );
    const N = 12000;
    const counts = new Map<number, number>();
    for (let d = 0; d < N; d++) {
      const t = sampleRow(logits, 0, logits.length, { ...s, seed: 9, draw: d }).token;
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(kept);
    kept.forEach((i, j) => {
      const sd = Math.sqrt((p[j] * (1 - p[j])) / N);
      expect(Math.abs((counts.get(i) ?? 0) / N - p[j])).toBeLessThan(5 * sd + 1e-3);
    });
  });

  it('top-k keeps every token tied at the threshold', () => {
    const logits = Float32Array.of(3, 2, 2, 2, 1);
    const s = { seed: 1, draw: 0, topK: 2, temperature: 1, topP: 1 };
    const tr = sampleRow(logits, 0, 5, s);
    expect(tr.threshold).toBe(orderedKey(2));
    const seen = new Set<number>();
    for (let d = 0; d < 400; d++) seen.add(sampleRow(logits, 0, 5, { ...s, draw: d }).token);
    expect([...seen].sort()).toEqual([0, 1, 2, 3]);
  });

  it('bisection thresholds match the sorting definition of top-k / top-p', () => {
    const settings = SETTINGS.filter((s) => s.temperature > 0);
    let checked = 0;
    for (const vocab of [2, 257, 1000, 3001]) {
      for (const [si, s] of settings.entries()) {
        for (let kind = 0; kind < 3; kind++) {
          const row = logitRow(vocab, kind, 77 * si + kind + vocab);
          const { threshold } = sampleRow(row, 0, vocab, { ...s, seed: 1, draw: 2 });
          const want = keptBySorting(row, s);
          const got = new Set(
            Array.from(row.keys()).filter((i) => orderedKey(row[i]) >= threshold),
          );
          expect([...got].sort((a, b) => a - b)).toEqual([...want].sort((a, b) => a - b));
          checked++;
        }
      }
    }
    expect(checked).toBe(4 * settings.length * 3);
  });

  it('uniform draws cover [0, 1) evenly and depend on seed and draw', () => {
    const N = 20000;
    const bins = new Array<number>(10).fill(0);
    for (let d = 0; d < N; d++) {
      const u = uniformDraw(123, d);
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
      bins[Math.floor(u * 10)]++;
    }
    for (const b of bins) expect(Math.abs(b / N - 0.1)).toBeLessThan(0.01);
    expect(uniformDraw(1, 5)).not.toBe(uniformDraw(2, 5));
    expect(uniformDraw(1, 5)).not.toBe(uniformDraw(1, 6));
  });

  it('writes the token to ids[0] when ids are given', () => {
    const out = sample.reference(
      { op: 'sample', vocab: 3 },
      { logits: Float32Array.of(0, 5, 1), ids: Uint32Array.of(9, 9) },
      { T: 1, pos: 0, L: 1 },
    );
    expect(Array.from(out.token)).toEqual([1, 0]);
    expect(Array.from(out.ids)).toEqual([1, 9]);
  });
});
