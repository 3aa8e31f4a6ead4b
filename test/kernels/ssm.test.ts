/**
 * Selective scan (Mamba-1) and SSD (Mamba-2): the chunked prefill kernels and the fused
 * decode kernels against the CPU references, and the references against a plain sequential
 * recurrence written here. Covers T around the chunk size, several head/group/state sizes,
 * the state reset at pos 0 (the incoming state buffer holds garbage there), carried state at
 * pos > 0, and prefill(T) + one decode step = prefill(T + 1).
 */
import { describe, expect, it } from 'vitest';
import {
  scanChunk,
  selectiveScanChunked,
  selectiveScanKernel,
  ssdChunked,
  ssdKernel,
  ssdOutFloats,
  ssdOutTiles,
} from '../../codegen/kernels/ssm.ts';
import { BASELINE_CAPS, type DeviceCaps } from '../../src/target.ts';
import type { GeneratedOp } from '../../codegen/kernels/types.ts';
import type { SelectiveScanAttrs, SsdAttrs, StepShape } from '../../src/graph/ops.ts';
import { selectiveScan, ssd } from '../../src/ops/ssm.ts';
import { softplus } from '../../src/ops/math.ts';
import { runLaunches, testGpu } from '../helpers/gpu.ts';
import { maxRelError, randn, rng } from '../helpers/numeric.ts';

const TOL = 1e-4;
const SENTINEL = -4242.5;

type Inputs = Record<string, Float32Array>;

/** Runs a generated op: `inputs` hold every input (sized for maxT) and the state; returns out and state. */
async function runOp(
  gen: GeneratedOp,
  inputs: Inputs,
  outRows: number,
  width: number,
  step: StepShape,
): Promise<{ out: Float32Array; state: Float32Array }> {
  const outputs: Record<string, number> = {};
  for (const [name, bytes] of Object.entries(gen.scratch)) outputs[name] = bytes / 4;
  const out = new Float32Array(outRows * width).fill(SENTINEL);
  const got = await runLaunches(gen.launches, {
    inputs: { ...inputs, state: inputs.state.slice(), out },
    outputs,
    step,
  });
  // Rows at and beyond T are never written.
  expect(got.out.subarray(step.T * width).every((v) => v === SENTINEL)).toBe(true);
  return { out: got.out.subarray(0, step.T * width), state: got.state };
}

/** Rows [from, from + n) of a [rows, width] array. */
function rows(a: Float32Array, width: number, from: number, n: number): Float32Array {
  return a.slice(from * width, (from + n) * width);
}

/** A uniform spread in [lo, hi). */
function spread(n: number, seed: number, lo: number, hi: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

const silu = (v: number) => v / (1 + Math.exp(-v));

// ---------------------------------------------------------------------------------------
// Selective scan
// ---------------------------------------------------------------------------------------

interface ScanData {
  a: SelectiveScanAttrs;
  inputs: Inputs;
}

/** dt in [dtLo, dtHi) before softplus; aLog near log(1..dState) like S4D-real init. */
function scanData(D: number, N: number, T: number, seed: number, dtLo = -5, dtHi = 1.5): ScanData {
  const a: SelectiveScanAttrs = { op: 'selective_scan', dInner: D, dState: N };
  const jitter = randn(D * N, seed + 3, 0.3);
  return {
    a,
    inputs: {
      x: randn(T * D, seed, 2),
      dt: spread(T * D, seed + 1, dtLo, dtHi),
      aLog: Float32Array.from(jitter, (j, i) => Math.log(1 + (i % N)) + j),
      b: randn(T * N, seed + 4, 1.5),
      c: randn(T * N, seed + 5, 1.5),
      d: randn(D, seed + 6, 1),
      z: randn(T * D, seed + 7, 3),
      state: randn(D * N, seed + 8, 2),
    },
  };
}

/** The recurrence as written in HF MambaMixer.slow_forward, loop order (channel, state, token). */
function sequentialScan(a: SelectiveScanAttrs, inp: Inputs, T: number, pos: number) {
  const { dInner: D, dState: N } = a;
  const y = new Float64Array(T * D);
  const state = new Float32Array(D * N);
  for (let d = 0; d < D; d++) {
    for (let n = 0; n < N; n++) {
      let h = pos === 0 ? 0 : inp.state[d * N + n];
      const A = -Math.exp(inp.aLog[d * N + n]);
      for (let t = 0; t < T; t++) {
        const dt = softplus(inp.dt[t * D + d]);
        h = Math.exp(A * dt) * h + dt * inp.b[t * N + n] * inp.x[t * D + d];
        y[t * D + d] += h * inp.c[t * N + n];
      }
      state[d * N + n] = h;
    }
  }
  const out = new Float32Array(T * D);
  for (let t = 0; t < T; t++)
    for (let d = 0; d < D; d++) {
      const i = t * D + d;
      out[i] = (y[i] + inp.d[d] * inp.x[i]) * silu(inp.z[i]);
    }
  return { out, state };
}

function scanReference(a: SelectiveScanAttrs, inp: Inputs, step: StepShape) {
  const r = selectiveScan.reference(a, { ...inp, state: inp.state.slice() }, step);
  return { out: r.out as Float32Array, state: r.state as Float32Array };
}

describe('selective_scan reference', () => {
  it('matches the plain sequential recurrence, with the state reset at pos 0', () => {
    for (const pos of [0, 9]) {
      const { a, inputs } = scanData(13, 6, 20, 1);
      const step = { T: 20, pos, L: 1 };
      const want = sequentialScan(a, inputs, 20, pos);
      const got = scanReference(a, inputs, step);
      expect(maxRelError(got.out, want.out)).toBeLessThan(1e-6);
      expect(maxRelError(got.state, want.state)).toBeLessThan(1e-6);
    }
  });

  it('uses softplus with the identity above 20', () => {
    expect(softplus(25)).toBe(25);
    expect(softplus(0)).toBeCloseTo(Math.LN2, 12);
    expect(softplus(-30)).toBeCloseTo(Math.exp(-30), 20);
  });
});

/** The chunk the kernel picks for dInner 37 at these lengths. */
const Q = scanChunk(37, 128);
const scanTs = [...new Set([1, 7, Q - 1, Q, Q + 1, 3 * Q + 5])];

describe('selective_scan chunked prefill kernel', () => {
  for (const [D, N] of [
    [37, 16],
    [37, 8],
  ]) {
    for (const T of scanTs) {
      for (const pos of [0, 6]) {
        it(`dInner ${D}, dState ${N}, T = ${T}, pos = ${pos}`, async () => {
          const { caps } = await testGpu();
          const maxT = T + 2;
          const { a, inputs } = scanData(D, N, maxT, 100 + T + N + pos);
          // At pos 0 the state buffer's contents must be ignored: fill it with garbage.
          if (pos === 0) inputs.state.fill(1e4);
          const step = { T, pos, L: 1 };
          const gen = selectiveScanKernel(a, { caps, maxT });
          expect(gen.launches).toHaveLength(3);
          expect(scanChunk(D, maxT)).toBe(Q);
          const got = await runOp(gen, inputs, maxT, D, step);
          const want = scanReference(a, inputs, step);
          const seq = sequentialScan(a, inputs, T, pos);
          expect(maxRelError(got.out, want.out)).toBeLessThanOrEqual(TOL);
          expect(maxRelError(got.state, want.state)).toBeLessThanOrEqual(TOL);
          expect(maxRelError(got.state, seq.state)).toBeLessThanOrEqual(TOL);
        });
      }
    }
  }

  it('with small chunks (many chunks, a partial last one) and strong decays', async () => {
    const { caps } = await testGpu();
    // dt up to 25 (softplus' identity region) and A down to -e^3: most decays underflow to 0.
    const { a, inputs } = scanData(21, 16, 61, 7, -6, 25);
    for (let i = 0; i < inputs.aLog.length; i += 3) inputs.aLog[i] = 3;
    const step = { T: 61, pos: 3, L: 1 };
    const got = await runOp(selectiveScanChunked(a, { caps, maxT: 64 }, 5), inputs, 64, 21, step);
    const want = scanReference(a, inputs, step);
    expect(maxRelError(got.out, want.out)).toBeLessThanOrEqual(TOL);
    expect(maxRelError(got.state, want.state)).toBeLessThanOrEqual(TOL);
  });
});

describe('selective_scan chunk choice', () => {
  it('takes longer chunks when the layer is wide enough to stay parallel', () => {
    expect(scanChunk(5120, 2048)).toBe(64);
    expect(scanChunk(1536, 2048)).toBe(16);
    expect(scanChunk(1536, 8192)).toBe(64);
    expect(scanChunk(37, 1)).toBe(16);
  });
});

describe('selective_scan decode kernel', () => {
  const variants: { name: string; caps: (c: DeviceCaps) => DeviceCaps; launches: number }[] = [
    { name: 'fused', caps: (c) => c, launches: 1 },
    {
      name: 'chunked fallback with 8 storage buffers',
      caps: (c) => ({ ...c, maxStorageBuffersPerStage: 8 }),
      launches: 3,
    },
  ];
  for (const v of variants) {
    for (const [D, N] of [
      [37, 16],
      [37, 8],
      [5, 40],
    ]) {
      for (const pos of [0, 11]) {
        it(`${v.name}: dInner ${D}, dState ${N}, pos = ${pos}`, async () => {
          const { caps } = await testGpu();
          const { a, inputs } = scanData(D, N, 1, 300 + D + N + pos);
          if (pos === 0) inputs.state.fill(-1e4);
          const step = { T: 1, pos, L: 1 };
          const gen = selectiveScanKernel(a, { caps: v.caps(caps), maxT: 1 });
          expect(gen.launches).toHaveLength(v.launches);
          const got = await runOp(gen, inputs, 1, D, step);
          const want = scanReference(a, inputs, step);
          expect(maxRelError(got.out, want.out)).toBeLessThanOrEqual(TOL);
          expect(maxRelError(got.state, want.state)).toBeLessThanOrEqual(TOL);
        });
      }
    }
  }

  it('prefill(T) then a decode step equals prefill(T + 1)', async () => {
    const { caps } = await testGpu();
    const D = 37;
    const N = 16;
    for (const T of [Q - 1, Q, 2 * Q + 3]) {
      const { a, inputs } = scanData(D, N, T + 1, 500 + T);
      inputs.state.fill(7); // garbage: both prefills start at pos 0
      const full = await runOp(selectiveScanKernel(a, { caps, maxT: T + 1 }), inputs, T + 1, D, {
        T: T + 1,
        pos: 0,
        L: 1,
      });
      const pre = await runOp(selectiveScanKernel(a, { caps, maxT: T + 1 }), inputs, T + 1, D, {
        T,
        pos: 0,
        L: 1,
      });
      const row = (name: string, w: number) => rows(inputs[name], w, T, 1);
      const one: Inputs = {
        ...inputs,
        x: row('x', D),
        dt: row('dt', D),
        z: row('z', D),
        b: row('b', N),
        c: row('c', N),
        state: pre.state,
      };
      const dec = await runOp(selectiveScanKernel(a, { caps, maxT: 1 }), one, 1, D, {
        T: 1,
        pos: T,
        L: 1,
      });
      expect(maxRelError(dec.out, rows(full.out, D, T, 1))).toBeLessThanOrEqual(TOL);
      expect(maxRelError(dec.state, full.state)).toBeLessThanOrEqual(TOL);
      expect(maxRelError(pre.out, full.out.subarray(0, T * D))).toBeLessThanOrEqual(TOL);
    }
  });
});

// ---------------------------------------------------------------------------------------
// SSD
// ---------------------------------------------------------------------------------------

interface SsdCase {
  heads: number;
  headDim: number;
  dState: number;
  groups: number;
  chunk: number;
  dtMin?: number;
  dtMax?: number;
}

function ssdAttrs(c: SsdCase): SsdAttrs {
  return {
    op: 'ssd',
    heads: c.heads,
    headDim: c.headDim,
    dState: c.dState,
    groups: c.groups,
    chunk: c.chunk,
    dtMin: c.dtMin ?? 0,
    dtMax: c.dtMax ?? Infinity,
  };
}

/** dt in [dtLo, dtHi) before softplus; aLog in [-1, 2.5] (a from -0.37 to -12). */
function ssdData(a: SsdAttrs, T: number, seed: number, dtLo = -4, dtHi = 1): Inputs {
  const { heads: H, headDim: P, dState: N, groups: G } = a;
  return {
    x: randn(T * H * P, seed, 2),
    dt: spread(T * H, seed + 1, dtLo, dtHi),
    dtBias: randn(H, seed + 2, 0.5),
    aLog: spread(H, seed + 3, -1, 2.5),
    b: randn(T * G * N, seed + 4, 1.5),
    c: randn(T * G * N, seed + 5, 1.5),
    d: randn(H, seed + 6, 1),
    state: randn(H * P * N, seed + 7, 2),
  };
}

/** The recurrence per state element, loop order (head, p, n, token); δ as in HF torch_forward. */
function sequentialSsd(a: SsdAttrs, inp: Inputs, T: number, pos: number) {
  const { heads: H, headDim: P, dState: N, groups: G } = a;
  const y = new Float64Array(T * H * P);
  const state = new Float32Array(H * P * N);
  for (let h = 0; h < H; h++) {
    const g = Math.floor((h * G) / H);
    const A = -Math.exp(inp.aLog[h]);
    for (let p = 0; p < P; p++) {
      for (let n = 0; n < N; n++) {
        const si = (h * P + p) * N + n;
        let s = pos === 0 ? 0 : inp.state[si];
        for (let t = 0; t < T; t++) {
          const raw = softplus(inp.dt[t * H + h] + inp.dtBias[h]);
          const dt = Math.min(Math.max(raw, a.dtMin), a.dtMax);
          const bn = inp.b[(t * G + g) * N + n];
          s = Math.exp(dt * A) * s + dt * inp.x[(t * H + h) * P + p] * bn;
          y[(t * H + h) * P + p] += s * inp.c[(t * G + g) * N + n];
        }
        state[si] = s;
      }
    }
  }
  const out = new Float32Array(T * H * P);
  for (let i = 0; i < out.length; i++) {
    const h = Math.floor(i / P) % H;
    out[i] = y[i] + inp.d[h] * inp.x[i];
  }
  return { out, state };
}

function ssdReference(a: SsdAttrs, inp: Inputs, step: StepShape) {
  const r = ssd.reference(a, { ...inp, state: inp.state.slice() }, step);
  return { out: r.out as Float32Array, state: r.state as Float32Array };
}

const ssdCases: SsdCase[] = [
  { heads: 3, headDim: 5, dState: 16, groups: 1, chunk: 8 },
  { heads: 3, headDim: 5, dState: 8, groups: 3, chunk: 8, dtMin: 0.05, dtMax: 0.6 },
  { heads: 6, headDim: 7, dState: 8, groups: 2, chunk: 13 },
  // 32-row blocks with 2×2 score tiles; dState 40 = one full and one partial slice of 32.
  { heads: 3, headDim: 5, dState: 40, groups: 3, chunk: 40 },
  // Real Mamba-2 head shapes (headDim 64, dState 128: several dState slices and p tiles).
  { heads: 2, headDim: 64, dState: 128, groups: 1, chunk: 32, dtMax: 0.3 },
];

function ssdLabel(c: SsdCase): string {
  const lim = c.dtMax === undefined ? '' : `, dt in [${c.dtMin ?? 0}, ${c.dtMax}]`;
  return `heads ${c.heads}, headDim ${c.headDim}, dState ${c.dState}, groups ${c.groups}, chunk ${c.chunk}${lim}`;
}

describe('ssd reference', () => {
  it('matches the plain sequential recurrence, with the state reset at pos 0', () => {
    for (const pos of [0, 4]) {
      const a = ssdAttrs({ heads: 4, headDim: 3, dState: 5, groups: 2, chunk: 4, dtMax: 0.7 });
      const inputs = ssdData(a, 11, 21);
      const step = { T: 11, pos, L: 1 };
      const want = sequentialSsd(a, inputs, 11, pos);
      const got = ssdReference(a, inputs, step);
      expect(maxRelError(got.out, want.out)).toBeLessThan(1e-6);
      expect(maxRelError(got.state, want.state)).toBeLessThan(1e-6);
    }
  });
});

describe('ssd chunked prefill kernel', () => {
  for (const [ci, c] of ssdCases.entries()) {
    const Qc = c.chunk;
    for (const T of [...new Set([1, 7, Qc - 1, Qc, Qc + 1, 3 * Qc + 5])]) {
      for (const pos of [0, 5]) {
        if (ci === 4 && pos === 0 && T % 2 === 1) continue; // the big shape: fewer runs
        it(`${ssdLabel(c)}, T = ${T}, pos = ${pos}`, async () => {
          const { caps } = await testGpu();
          const a = ssdAttrs(c);
          const maxT = T + 3;
          const inputs = ssdData(a, maxT, 700 + 31 * ci + T + pos);
          if (pos === 0) inputs.state.fill(-3e3);
          const step = { T, pos, L: 1 };
          const gen = ssdKernel(a, { caps, maxT });
          expect(gen.launches).toHaveLength(4);
          const W = a.heads * a.headDim;
          const got = await runOp(gen, inputs, maxT, W, step);
          const want = ssdReference(a, inputs, step);
          const seq = sequentialSsd(a, inputs, T, pos);
          expect(maxRelError(got.out, want.out)).toBeLessThanOrEqual(TOL);
          expect(maxRelError(got.state, want.state)).toBeLessThanOrEqual(TOL);
          expect(maxRelError(got.state, seq.state)).toBeLessThanOrEqual(TOL);
        });
      }
    }
  }

  it('strong decays: cumulative log decays far below the f32 exp range stay finite', async () => {
    const { caps } = await testGpu();
    const a = ssdAttrs({ heads: 3, headDim: 5, dState: 16, groups: 1, chunk: 32 });
    // δ up to ~25 and a down to -e^4: Λ over a chunk reaches about -1e4.
    const inputs = ssdData(a, 70, 91, -3, 25);
    inputs.aLog[1] = 4;
    const step = { T: 70, pos: 2, L: 1 };
    const got = await runOp(ssdKernel(a, { caps, maxT: 70 }), inputs, 70, 15, step);
    const want = ssdReference(a, inputs, step);
    expect(maxRelError(got.out, want.out)).toBeLessThanOrEqual(TOL);
    expect(maxRelError(got.state, want.state)).toBeLessThanOrEqual(TOL);
  });

  it('keeps Λ_t − Λ_s accurate when in-chunk cumulative log decays reach −1e3 and beyond', async () => {
    // Plain f32 cumulative sums lose eps·|Λ| on exp(Λ_t − Λ_s) for the nearby tokens that
    // dominate y; the kernels' (hi, lo) pairs keep ~eps·|Λ_t − Λ_s|. Without them this case
    // measured 1.6e-4 (with them 1.3e-7); the bound is tight so that a partial loss shows too.
    const { caps } = await testGpu();
    const a = ssdAttrs({ heads: 2, headDim: 8, dState: 16, groups: 1, chunk: 256 });
    const inputs = ssdData(a, 300, 95, -5, -3);
    // Every ~10th token has δ ≈ 20 (Λ drops by ~200), the others δ ≈ 0.01: runs of tokens with
    // mild mutual decay sitting at Λ down to ~−5000.
    const r = rng(96);
    for (let i = 0; i < inputs.dt.length; i++) if (r() < 0.1) inputs.dt[i] = 20;
    inputs.dtBias.fill(0);
    inputs.aLog.fill(2.3);
    const step = { T: 300, pos: 1, L: 1 };
    const got = await runOp(ssdKernel(a, { caps, maxT: 300 }), inputs, 300, 16, step);
    const want = ssdReference(a, inputs, step);
    expect(maxRelError(got.out, want.out)).toBeLessThanOrEqual(3e-6);
    expect(maxRelError(got.state, want.state)).toBeLessThanOrEqual(3e-6);
  });

  it('the cases above cover both score tilings (1×1 and 2×2 per thread)', async () => {
    const { caps } = await testGpu();
    expect(ssdOutTiles(5, 16, 8, caps).sr).toBe(1);
    expect(ssdOutTiles(5, 40, 40, caps)).toMatchObject({ bt: 32, sr: 2, nk: 32 });
  });

  it('fits WebGPU baseline limits (16 KiB workgroup memory, 256 threads)', async () => {
    const t = ssdOutTiles(128, 128, 256, BASELINE_CAPS);
    expect(ssdOutFloats(128, t) * 4).toBeLessThanOrEqual(BASELINE_CAPS.maxWorkgroupStorageBytes);
    expect(t.bt * t.tpr).toBeLessThanOrEqual(256);
    const a = ssdAttrs({ heads: 2, headDim: 64, dState: 128, groups: 1, chunk: 16 });
    const inputs = ssdData(a, 40, 93);
    const step = { T: 37, pos: 1, L: 1 };
    const gen = ssdChunked(a, { caps: BASELINE_CAPS, maxT: 40 });
    const got = await runOp(gen, inputs, 40, 128, step);
    const want = ssdReference(a, inputs, step);
    expect(maxRelError(got.out, want.out)).toBeLessThanOrEqual(TOL);
    expect(maxRelError(got.state, want.state)).toBeLessThanOrEqual(TOL);
  });
});

describe('ssd decode kernel', () => {
  const variants: { name: string; caps: (c: DeviceCaps) => DeviceCaps; launches: number }[] = [
    { name: 'fused', caps: (c) => c, launches: 1 },
    {
      name: 'chunked fallback with 8 storage buffers',
      caps: (c) => ({ ...c, maxStorageBuffersPerStage: 8 }),
      launches: 4,
    },
  ];
  for (const v of variants) {
    for (const [ci, c] of ssdCases.entries()) {
      for (const pos of [0, 9]) {
        it(`${v.name}: ${ssdLabel(c)}, pos = ${pos}`, async () => {
          const { caps } = await testGpu();
          const a = ssdAttrs(c);
          const inputs = ssdData(a, 1, 900 + 13 * ci + pos);
          if (pos === 0) inputs.state.fill(5e3);
          const step = { T: 1, pos, L: 1 };
          const gen = ssdKernel(a, { caps: v.caps(caps), maxT: 1 });
          expect(gen.launches).toHaveLength(v.launches);
          const got = await runOp(gen, inputs, 1, a.heads * a.headDim, step);
          const want = ssdReference(a, inputs, step);
          expect(maxRelError(got.out, want.out)).toBeLessThanOrEqual(TOL);
          expect(maxRelError(got.state, want.state)).toBeLessThanOrEqual(TOL);
        });
      }
    }
  }

  // ssd-decode's packing: dtBias, aLog and d as one p, 7 bindings, one launch within 8.
  for (const [ci, c] of ssdCases.entries()) {
    for (const pos of [0, 9]) {
      it(`packed parameters with 8 storage buffers: ${ssdLabel(c)}, pos = ${pos}`, async () => {
        const { caps } = await testGpu();
        const a = ssdAttrs(c);
        const inputs = ssdData(a, 1, 1900 + 13 * ci + pos);
        if (pos === 0) inputs.state.fill(5e3);
        const step = { T: 1, pos, L: 1 };
        const { dtBias, aLog, d, ...rest } = inputs;
        const p = new Float32Array(3 * a.heads);
        p.set(dtBias, 0);
        p.set(aLog, a.heads);
        p.set(d, 2 * a.heads);
        const packed = { ...a, packed: true };
        const gen = ssdKernel(packed, { caps: { ...caps, maxStorageBuffersPerStage: 8 }, maxT: 1 });
        expect(gen.launches).toHaveLength(1);
        const got = await runOp(gen, { ...rest, p }, 1, a.heads * a.headDim, step);
        const want = ssdReference(a, inputs, step);
        expect(maxRelError(got.out, want.out)).toBeLessThanOrEqual(TOL);
        expect(maxRelError(got.state, want.state)).toBeLessThanOrEqual(TOL);
        const ref = ssd.reference(packed, { ...rest, p, state: inputs.state.slice() }, step);
        expect(maxRelError(ref.out, want.out)).toBeLessThanOrEqual(1e-6);
      });
    }
  }

  // mamba2-decode's form (SsdAttrs.row): x, dt, B, C and z as column ranges of one row, here
  // in an order and with gaps unlike in_proj's so that every offset counts; out gated by silu(z).
  for (const [ci, c] of [ssdCases[0], ssdCases[2], ssdCases[4]].entries()) {
    for (const [T, pos, gated] of [
      [1, 0, true],
      [1, 9, true],
      [1, 9, false],
      [3, 4, true],
    ] as const) {
      it(`one input row (fused decode): ${ssdLabel(c)}, T = ${T}, pos = ${pos}${gated ? ', gated' : ''}`, async () => {
        const { caps } = await testGpu();
        const a = ssdAttrs(c);
        const H = a.heads;
        const W = H * a.headDim;
        const GN = a.groups * a.dState;
        const inputs = ssdData(a, T, 3900 + 17 * ci + pos + T);
        if (pos === 0) inputs.state.fill(5e3);
        const z = randn(T * W, 3950 + ci, 2);
        // Columns: dt | 1 gap | C | B | x | z | 2 gap.
        const row = { dt: 0, c: H + 1, b: H + 1 + GN, x: H + 1 + 2 * GN, z: H + 1 + 2 * GN + W };
        const cols = row.z + W + 2;
        const inrow = randn(T * cols, 3990 + ci, 1);
        for (let t = 0; t < T; t++) {
          inrow.set(rows(inputs.dt, H, t, 1), t * cols + row.dt);
          inrow.set(rows(inputs.c, GN, t, 1), t * cols + row.c);
          inrow.set(rows(inputs.b, GN, t, 1), t * cols + row.b);
          inrow.set(rows(inputs.x, W, t, 1), t * cols + row.x);
          inrow.set(rows(z, W, t, 1), t * cols + row.z);
        }
        const fused: SsdAttrs = {
          ...a,
          packed: true,
          row: { ...row, cols, z: gated ? row.z : null },
        };
        const p = Float32Array.from([...inputs.dtBias, ...inputs.aLog, ...inputs.d]);
        const fin = { inrow, p, state: inputs.state };
        const gen = ssdKernel(fused, { caps: BASELINE_CAPS, maxT: T });
        expect(gen.launches).toHaveLength(1);
        expect(gen.launches[0].kernel.bindings.filter((b) => b.name !== 'step')).toHaveLength(4);
        const got = await runOp(gen, fin, T, W, { T, pos, L: 1 });
        const ref = ssd.reference(fused, { ...fin, state: inputs.state.slice() }, { T, pos, L: 1 });
        expect(maxRelError(got.out, ref.out as Float32Array)).toBeLessThanOrEqual(TOL);
        expect(maxRelError(got.state, ref.state as Float32Array)).toBeLessThanOrEqual(TOL);
        // The reference's row form = the plain SSD, gated after.
        const plain = ssdReference(a, inputs, { T, pos, L: 1 });
        const silu = (v: number) => v / (1 + Math.exp(-v));
        const want = plain.out.map((y, i) => (gated ? y * silu(z[i]) : y));
        expect(maxRelError(ref.out as Float32Array, want)).toBeLessThanOrEqual(1e-6);
        if (gated)
          expect(() => ssd.check({ ...fused, row: { ...fused.row!, cols: cols - 3 } })).toThrow(
            /row\.z/,
          );
      });
    }
  }

  it('packed parameters over a longer step run its tokens in order', async () => {
    const { caps } = await testGpu();
    const a = ssdAttrs(ssdCases[0]);
    for (const [T, pos] of [
      [3, 0],
      [4, 7],
    ]) {
      const inputs = ssdData(a, T, 2900 + T);
      const step = { T, pos, L: 1 };
      const { dtBias, aLog, d, ...rest } = inputs;
      const p = Float32Array.from([...dtBias, ...aLog, ...d]);
      const gen = ssdKernel({ ...a, packed: true }, { caps, maxT: 4 });
      const got = await runOp(gen, { ...rest, p }, 4, a.heads * a.headDim, step);
      const want = ssdReference(a, inputs, step);
      expect(maxRelError(got.out, want.out)).toBeLessThanOrEqual(TOL);
      expect(maxRelError(got.state, want.state)).toBeLessThanOrEqual(TOL);
    }
  });

  it('prefill(T) then a decode step equals prefill(T + 1)', async () => {
    const { caps } = await testGpu();
    for (const [ci, c] of [ssdCases[0], ssdCases[2]].entries()) {
      const a = ssdAttrs(c);
      const { heads: H, headDim: P, dState: N, groups: G } = a;
      const W = H * P;
      for (const T of [c.chunk - 1, c.chunk, 2 * c.chunk + 3]) {
        const inputs = ssdData(a, T + 1, 1100 + 7 * ci + T);
        inputs.state.fill(-9);
        const full = await runOp(ssdKernel(a, { caps, maxT: T + 1 }), inputs, T + 1, W, {
          T: T + 1,
          pos: 0,
          L: 1,
        });
        const pre = await runOp(ssdKernel(a, { caps, maxT: T + 1 }), inputs, T + 1, W, {
          T,
          pos: 0,
          L: 1,
        });
        const one: Inputs = {
          ...inputs,
          x: rows(inputs.x, W, T, 1),
          dt: rows(inputs.dt, H, T, 1),
          b: rows(inputs.b, G * N, T, 1),
          c: rows(inputs.c, G * N, T, 1),
          state: pre.state,
        };
        const dec = await runOp(ssdKernel(a, { caps, maxT: 1 }), one, 1, W, {
          T: 1,
          pos: T,
          L: 1,
        });
        expect(maxRelError(dec.out, rows(full.out, W, T, 1))).toBeLessThanOrEqual(TOL);
        expect(maxRelError(dec.state, full.state)).toBeLessThanOrEqual(TOL);
        expect(maxRelError(pre.out, full.out.subarray(0, T * W))).toBeLessThanOrEqual(TOL);
      }
    }
  });
});
