/**
 * H2O heavy-hitter attention (src/ops/h2o.ts): the op's reference against a naive model of the
 * rule (a kept set of positions per kv head, attention recomputed over it from the full k/v
 * history at every token), against dense causal attention when the budget is no smaller than the
 * context (bit for bit), and the WGSL kernel against the reference step after step on odd shapes,
 * T = 1, prefill chunks longer than the budget, budget 1, softcap and GQA.
 *
 * Tolerances (f32): kernel outputs within 1e-4 of the largest reference value (f32 dot products
 * and sums against the reference's f64 ones, the same bound as the dense attention kernels);
 * scores within 1e-5 (sums of probabilities ≤ a few units, f32 rounding per addition); positions (the
 * kept positions, u32) exactly: an eviction chosen differently would show there first.
 */
import { describe, expect, it } from 'vitest';
import { h2oAttentionKernel } from '../../codegen/kernels/h2o.ts';
import type { AttentionAttrs, H2oAttentionAttrs } from '../../src/graph/ops.ts';
import { attention } from '../../src/ops/attention.ts';
import { h2oAttention, h2oPolicyError } from '../../src/ops/h2o.ts';
import { roundF16 } from '../../src/ops/math.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn } from '../helpers/numeric.ts';
import { f16BitsToF32 } from '../../formats/safetensors.ts';

interface Case {
  heads: number;
  kvHeads: number;
  hd: number;
  budget: number;
  recent: number;
  sink: number;
  softcap?: number;
  /** f16 caches (kvType 'f16'). */
  kv16?: boolean;
  /** Tokens per step, in order. */
  steps: number[];
}

function attrs(c: Case): H2oAttentionAttrs {
  return {
    op: 'h2o_attention',
    heads: c.heads,
    kvHeads: c.kvHeads,
    headDim: c.hd,
    scale: 1 / Math.sqrt(c.hd),
    softcap: c.softcap ?? null,
    budget: c.budget,
    recent: c.recent,
    sinkTokens: c.sink,
    ...(c.kv16 ? { kvType: 'f16' as const } : {}),
  };
}

interface State {
  kcache: Float32Array;
  vcache: Float32Array;
  /** Per row and kv head: the kept position, then its score's f32 bits (src/ops/h2o.ts). */
  rows: Uint32Array;
}

/** The rows state's positions and scores, apart. */
function split(rows: Uint32Array): { slots: Uint32Array; score: Float32Array } {
  const floats = new Float32Array(rows.buffer, rows.byteOffset, rows.length);
  return {
    slots: rows.filter((_, i) => i % 2 === 0),
    score: floats.filter((_, i) => i % 2 === 1),
  };
}

function emptyState(a: H2oAttentionAttrs): State {
  const kvw = a.kvHeads * a.headDim;
  return {
    kcache: new Float32Array(a.budget * kvw),
    vcache: new Float32Array(a.budget * kvw),
    rows: new Uint32Array(2 * a.budget * a.kvHeads),
  };
}

/** Step i's q, k, v (deterministic). Larger q makes attention peaked, so scores spread apart. */
function stepInputs(a: H2oAttentionAttrs, T: number, i: number) {
  const kvw = a.kvHeads * a.headDim;
  return {
    q: randn(T * a.heads * a.headDim, 1000 + i, 3),
    k: randn(T * kvw, 2000 + i),
    v: randn(T * kvw, 3000 + i),
  };
}

/**
 * The rule written the plain way: per kv head a list of kept positions and their scores; each
 * token evicts by the rule when the list is full, joins it, and attends over the kept positions'
 * k and v taken from the whole history. Returns the outputs per step and the kept positions.
 */
function naive(c: Case): { outs: Float32Array[]; kept: number[][] } {
  const a = attrs(c);
  const kvw = c.kvHeads * c.hd;
  const qw = c.heads * c.hd;
  const group = c.heads / c.kvHeads;
  const K: Float32Array[] = [];
  const V: Float32Array[] = [];
  const kept = Array.from({ length: c.kvHeads }, () => [] as { pos: number; score: number }[]);
  const outs: Float32Array[] = [];
  let pos = 0;
  for (const [i, T] of c.steps.entries()) {
    const { q, k, v } = stepInputs(a, T, i);
    const out = new Float32Array(T * qw);
    for (let t = 0; t < T; t++, pos++) {
      const f16 = (x: Float32Array) => (c.kv16 ? x.map(roundF16) : x);
      K.push(f16(k.slice(t * kvw, (t + 1) * kvw)));
      V.push(f16(v.slice(t * kvw, (t + 1) * kvw)));
      for (let h = 0; h < c.kvHeads; h++) {
        const set = kept[h];
        if (set.length === c.budget) {
          const candidates = set.filter((e) => e.pos >= c.sink && e.pos < pos - c.recent);
          candidates.sort((x, y) => x.score - y.score || x.pos - y.pos);
          set.splice(set.indexOf(candidates[0]), 1);
        }
        set.push({ pos, score: 0 });
        set.sort((x, y) => x.pos - y.pos);
        const gained = new Float64Array(set.length);
        for (let g = h * group; g < (h + 1) * group; g++) {
          const s = set.map((e) => {
            let x = 0;
            for (let d = 0; d < c.hd; d++) x += q[t * qw + g * c.hd + d] * K[e.pos][h * c.hd + d];
            x *= a.scale;
            return c.softcap === undefined ? x : c.softcap * Math.tanh(x / c.softcap);
          });
          const m = Math.max(...s);
          const e = s.map((x) => Math.exp(x - m));
          const sum = e.reduce((x, y) => x + y, 0);
          for (let d = 0; d < c.hd; d++) {
            let o = 0;
            for (let r = 0; r < set.length; r++) o += e[r] * V[set[r].pos][h * c.hd + d];
            out[t * qw + g * c.hd + d] = o / sum;
          }
          for (let r = 0; r < set.length; r++) gained[r] += e[r] / sum;
        }
        // The op keeps scores in f32 state: round the same way.
        for (let r = 0; r < set.length; r++) set[r].score = Math.fround(set[r].score + gained[r]);
      }
    }
    outs.push(out);
  }
  return { outs, kept: kept.map((s) => s.map((e) => e.pos)) };
}

function keptOf(a: H2oAttentionAttrs, slots: Uint32Array, n: number): number[][] {
  return Array.from({ length: a.kvHeads }, (_, h) =>
    Array.from({ length: Math.min(n, a.budget) }, (_, r) => slots[r * a.kvHeads + h]).sort(
      (x, y) => x - y,
    ),
  );
}

const cases: Case[] = [
  // GQA, odd head width, sinks and a recent window, decode far past the budget.
  { heads: 4, kvHeads: 2, hd: 7, budget: 9, recent: 3, sink: 2, steps: Array(40).fill(1) },
  // Prefill chunks longer than the budget, then decode; no sinks, no recent window.
  { heads: 3, kvHeads: 3, hd: 5, budget: 5, recent: 0, sink: 0, steps: [7, 3, 1, 1, 6, 1] },
  // Budget 1: each token sees only itself.
  { heads: 2, kvHeads: 1, hd: 4, budget: 1, recent: 0, sink: 0, steps: [3, 1, 1] },
  // Softcap, more threads' worth of rows than one workgroup (budget 70 > 64), wide group.
  {
    heads: 6,
    kvHeads: 1,
    hd: 9,
    budget: 70,
    recent: 20,
    sink: 4,
    softcap: 5,
    steps: [50, 13, 9, 1, 1, 1, 1, 1],
  },
  // Budget larger than the context: never evicts.
  { heads: 2, kvHeads: 1, hd: 16, budget: 40, recent: 4, sink: 1, steps: [11, 1, 1, 5, 1] },
  // One evictable row (budget = recent + sinks + 1), heads wider than the workgroup (70 > 64).
  { heads: 2, kvHeads: 1, hd: 70, budget: 6, recent: 3, sink: 2, steps: Array(14).fill(1) },
  // f16 caches with more pairs per head than threads (65 > 64).
  { heads: 2, kvHeads: 2, hd: 130, budget: 4, recent: 1, sink: 0, kv16: true, steps: [5, 1, 1] },
  // Decode's rows split three ways (50 each, the last partial until the budget fills), evicting.
  { heads: 4, kvHeads: 2, hd: 8, budget: 150, recent: 10, sink: 2, steps: [140, 1, 1, 9, 1, 1] },
  // f16 caches: an odd pair count per head, prefill past the budget, then decode.
  {
    heads: 4,
    kvHeads: 2,
    hd: 6,
    budget: 7,
    recent: 2,
    sink: 1,
    kv16: true,
    steps: [9, 1, 1, 4, 1, 1, 1],
  },
];

const name = (c: Case) =>
  `H=${c.heads}/${c.kvHeads} hd=${c.hd} budget ${c.budget} recent ${c.recent} sinks ${c.sink}` +
  `${c.softcap ? ` softcap ${c.softcap}` : ''}${c.kv16 ? ' kv f16' : ''}, steps ${c.steps.join(',')}`;

describe('h2o reference', () => {
  for (const c of cases) {
    it(`follows the plain rule: ${name(c)}`, () => {
      const a = attrs(c);
      const want = naive(c);
      let st = emptyState(a);
      let pos = 0;
      for (const [i, T] of c.steps.entries()) {
        const r = h2oAttention.reference(a, { ...stepInputs(a, T, i), ...st }, { T, pos, L: 1 });
        st = r as unknown as State;
        expect(maxRelError(r.out, want.outs[i])).toBeLessThan(1e-6);
        pos += T;
      }
      expect(keptOf(a, split(st.rows).slots, pos)).toEqual(want.kept);
    });
  }

  it('a budget no smaller than the context equals dense causal attention bit for bit', () => {
    const c = cases[4];
    const a = attrs(c);
    const kvw = c.kvHeads * c.hd;
    const total = c.steps.reduce((x, y) => x + y, 0);
    const dense: AttentionAttrs = {
      op: 'attention',
      heads: c.heads,
      kvHeads: c.kvHeads,
      headDim: c.hd,
      vHeadDim: c.hd,
      scale: a.scale,
      causal: true,
      window: null,
      softcap: null,
      sinks: false,
      capacity: total,
    };
    const kc = new Float32Array(total * kvw);
    const vc = new Float32Array(total * kvw);
    let st = emptyState(a);
    let pos = 0;
    for (const [i, T] of c.steps.entries()) {
      const { q, k, v } = stepInputs(a, T, i);
      kc.set(k, pos * kvw);
      vc.set(v, pos * kvw);
      const step = { T, pos, L: 1 };
      const r = h2oAttention.reference(a, { q, k, v, ...st }, step);
      st = r as unknown as State;
      const want = attention.reference(dense, { q, kcache: kc, vcache: vc }, step).out;
      expect(Array.from(r.out)).toEqual(Array.from(want));
      pos += T;
    }
  });

  it('a policy that cannot work names the setting and the limit', () => {
    expect(h2oPolicyError({ budget: 8, recent: 6, sinkTokens: 2 })).toMatch(
      /h2o budget 8 must exceed recent 6 \+ sink_tokens 2 \(= 8\)/,
    );
    expect(h2oPolicyError({ budget: 0, recent: 0, sinkTokens: 0 })).toMatch(
      /budget must be an integer >= 1, got 0/,
    );
    expect(h2oPolicyError({ budget: 4, recent: -1, sinkTokens: 0 })).toMatch(/recent must be/);
    expect(h2oPolicyError({ budget: 9, recent: 6, sinkTokens: 2 })).toBeNull();
    expect(() => h2oAttention.check({ ...attrs(cases[0]), heads: 3 })).toThrow(
      /multiple of kvHeads/,
    );
  });
});

describe('h2o kernel', () => {
  for (const c of cases) {
    it(`matches the reference step after step: ${name(c)}`, async () => {
      const gpu = await testGpu();
      const a = attrs(c);
      const maxT = Math.max(...c.steps);
      const gen = (m: number) => h2oAttentionKernel(a, { caps: gpu.caps, maxT: m });
      // A step of one token runs as a longer step's one-pass kernel would (maxT 2 at least) and
      // as decode's three launches (maxT 1: evict, then the kept rows split over workgroups).
      const oneToken = [gen(Math.max(maxT, 2)), gen(1)];
      expect(oneToken[1].launches).toHaveLength(3);
      // Storage bindings (the step uniform aside) within WebGPU's default per-stage limit.
      for (const g of [gen(maxT), ...oneToken])
        for (const l of g.launches)
          expect(l.kernel.bindings.length - 1).toBeLessThanOrEqual(
            BASELINE_CAPS.maxStorageBuffersPerStage,
          );
      let cpu = emptyState(a);
      let dev: State = emptyState(a);
      // An f16 cache on the GPU: u32 words of two halves (zero bits are zeros).
      if (c.kv16) {
        dev.kcache = new Float32Array(dev.kcache.length / 2);
        dev.vcache = new Float32Array(dev.vcache.length / 2);
      }
      const unpack = (x: Float32Array) => (c.kv16 ? f16BitsToF32(new Uint16Array(x.buffer)) : x);
      let pos = 0;
      for (const [i, T] of c.steps.entries()) {
        const inputs = stepInputs(a, T, i);
        const step = { T, pos, L: 1 };
        const want = h2oAttention.reference(a, { ...inputs, ...cpu }, step);
        cpu = want as unknown as State;
        let next = dev;
        // Each generator starts from the same state; the last one's result goes on.
        for (const g of T === 1 ? oneToken : [gen(maxT)]) {
          const got = await runLaunches(g.launches, {
            inputs: {
              ...inputs,
              kcache: dev.kcache.slice(),
              vcache: dev.vcache.slice(),
              rows: dev.rows.slice(),
              out: new Float32Array(T * a.heads * a.headDim),
            },
            outputs: Object.fromEntries(Object.entries(g.scratch).map(([k, b]) => [k, b / 4])),
            step,
          });
          next = {
            kcache: got.kcache,
            vcache: got.vcache,
            rows: new Uint32Array(got.rows.buffer),
          };
          expect(maxRelError(got.out, want.out)).toBeLessThanOrEqual(1e-4);
          const d = split(next.rows);
          const w = split(cpu.rows);
          expect(Array.from(d.slots)).toEqual(Array.from(w.slots));
          const n = Math.min(pos + T, a.budget) * a.kvHeads;
          expect(maxRelError(d.score.subarray(0, n), w.score.subarray(0, n))).toBeLessThan(1e-5);
          // The cached k and v as stored: f16 rounding bit for bit, f32 copies exactly.
          expect(Array.from(unpack(next.kcache))).toEqual(Array.from(cpu.kcache));
          expect(Array.from(unpack(next.vcache))).toEqual(Array.from(cpu.vcache));
        }
        dev = next;
        pos += T;
      }
    });
  }
});
