/**
 * matmul: out = x · wᵀ (w is [out, in] like nn.Linear) with the fusions the
 * decode path lives on: a norm prologue or a pointwise x map, bias / activation / gating /
 * scale / pointwise / residual epilogues, strided writes into a wider output (split LM heads),
 * and the QKV + RoPE + KV-append epilogue. This file is the ground truth for the WGSL
 * kernels in codegen/kernels/matmul.ts and for the GraphIR interpreter.
 */
import { dtypeBytes, weightTypeUnsupported } from '../graph/dtype.ts';
import { roundWeight } from './weight-storage.ts';
import {
  cacheRow,
  convStateName,
  EPILOGUE_VALUE,
  kvTypeOf,
  splitOutput,
  type Cost,
  type FusedPointwise,
  type MatmulAttrs,
  type StepShape,
} from '../graph/ops.ts';
import { activate, normalizeRow, roundF16, rotateHead } from './math.ts';
import { evalFused, exprFlops, fusedInputRules, pointwise } from './pointwise.ts';
import {
  bindingCount,
  f32,
  rule,
  inPlace,
  type Arrays,
  type OpDefinition,
  type TensorRule,
} from './types.ts';

/**
 * Reject attribute combinations that have no meaning, with a message naming the
 * attribute, so the CPU reference and every kernel agree on what is supported.
 */
function check(a: MatmulAttrs): void {
  const pre = `matmul N=${a.N} K=${a.K}`;
  if (!(Number.isInteger(a.N) && a.N > 0 && Number.isInteger(a.K) && a.K > 0)) {
    throw new Error(`${pre}: N and K must be positive integers`);
  }
  if (!Number.isFinite(a.scale)) throw new Error(`${pre}: scale must be finite, got ${a.scale}`);
  if (a.xType === 'f16' && a.wType !== 'f16')
    throw new Error(`${pre}: xType 'f16' needs wType 'f16' (f16 × f16 products)`);
  const narrow = weightTypeUnsupported(a.wType, a.K);
  if (narrow) throw new Error(`${pre}: wType ${narrow}`);
  if (!a.ropeKv && a.outOffset + a.N > a.outStride) {
    throw new Error(`${pre}: outOffset (${a.outOffset}) + N exceeds outStride (${a.outStride})`);
  }
  const sp = a.splits;
  if (sp) {
    if (sp.length < 2 || sp.some((n) => !Number.isInteger(n) || n <= 0))
      throw new Error(`${pre}: splits must be two or more positive column counts, got [${sp}]`);
    if (sp.reduce((x, y) => x + y, 0) !== a.N)
      throw new Error(`${pre}: splits [${sp}] must sum to N`);
    if (a.ropeKv || a.gated || a.residual || a.outStride !== a.N || a.outOffset !== 0)
      throw new Error(
        `${pre}: splits cannot be combined with ropeKv, gated, residual or a strided output`,
      );
  }
  checkFused(a, pre);
  const pg = a.prologueGroup;
  if (pg !== undefined) {
    if (!Number.isInteger(pg) || pg < 1 || a.K % pg !== 0)
      throw new Error(`${pre}: prologueGroup (${pg}) must be a positive divisor of K`);
    if (a.prologue?.kind !== 'rms') throw new Error(`${pre}: prologueGroup needs an rms prologue`);
  }
  if (a.prologueGroupWeight && pg === undefined)
    throw new Error(`${pre}: prologueGroupWeight needs prologueGroup`);
  if (a.prologueGate && (a.prologue?.kind !== 'rms' || a.rows !== 'T' || a.xMap))
    throw new Error(`${pre}: prologueGate needs an rms prologue, rows 'T' and no xMap`);
  const gc = a.prologueGateCols;
  if (gc && (!a.prologueGate || gc.offset < 0 || gc.offset + a.K > gc.cols))
    throw new Error(
      `${pre}: prologueGateCols [${gc.offset}, +K) must lie in its ${gc.cols} columns, with prologueGate`,
    );
  const cv = a.conv;
  if (cv) {
    if (!Number.isInteger(cv.kernel) || cv.kernel < 2)
      throw new Error(`${pre}: conv kernel must be an integer >= 2, got ${cv.kernel}`);
    const first = sp ? sp[0] : a.N;
    const off = cv.offset ?? 0;
    if (off !== 0 && (sp || !Number.isInteger(off) || off < 0))
      throw new Error(
        `${pre}: conv offset (${off}) must be a non-negative integer, and needs no splits`,
      );
    if (!Number.isInteger(cv.channels) || cv.channels < 1 || off + cv.channels > first)
      throw new Error(
        `${pre}: conv channels (${cv.channels}) from column ${off} must end by ${first}, the first output's columns`,
      );
    const st = cv.states;
    if (
      st &&
      (st.some((c) => !Number.isInteger(c) || c < 1) ||
        st.reduce((x, y) => x + y, 0) !== cv.channels)
    )
      throw new Error(
        `${pre}: conv states [${st}] must be positive channel counts summing to ${cv.channels}`,
      );
    if (cv.packedBias && !cv.bias) throw new Error(`${pre}: conv packedBias needs bias`);
    if (a.ropeKv || a.rows !== 'T' || a.outOffset !== 0 || a.outStride !== a.N)
      throw new Error(`${pre}: conv needs rows 'T', no ropeKv and a dense output`);
  }
  const r = a.ropeKv;
  if (!r) return;
  const { qCols, kvCols, headDim, rotaryDim, capacity } = r;
  if (a.gated || a.act || a.residual || a.scale !== 1) {
    throw new Error(`${pre}: ropeKv cannot be combined with gated, act, scale or residual`);
  }
  if (a.rows !== 'T')
    throw new Error(`${pre}: ropeKv needs rows 'T' (every token's k/v goes to the cache)`);
  if (qCols + 2 * kvCols !== a.N) {
    throw new Error(`${pre}: ropeKv needs N = qCols + 2*kvCols (${qCols} + 2*${kvCols})`);
  }
  if (headDim <= 0 || headDim % 2 !== 0 || qCols % headDim !== 0 || kvCols % headDim !== 0) {
    throw new Error(`${pre}: ropeKv headDim ${headDim} must be even and divide qCols and kvCols`);
  }
  if (rotaryDim < 0 || rotaryDim % 2 !== 0 || rotaryDim > headDim) {
    throw new Error(`${pre}: ropeKv rotaryDim ${rotaryDim} must be even and <= headDim`);
  }
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new Error(`${pre}: ropeKv capacity must be a positive integer, got ${capacity}`);
  }
  if (r.ring && !(r.ring.sink >= 0 && r.ring.sink < r.ring.rows)) {
    throw new Error(
      `${pre}: ropeKv ring sink rows ${r.ring.sink} must be below its ${r.ring.rows} rows`,
    );
  }
  // q rows are written densely as [T, qCols] (what attention reads); a split or offset output has
  // no meaning here, but the lowering may leave the default outStride N in place.
  if (a.outOffset !== 0 || (a.outStride !== qCols && a.outStride !== a.N)) {
    throw new Error(
      `${pre}: ropeKv writes q as [T, qCols]; outStride must be qCols or N and outOffset 0 ` +
        `(got ${a.outStride}, ${a.outOffset})`,
    );
  }
}

/**
 * The fused x map and epilogue: each input named as MatmulAttrs says, and covering x's K columns
 * (x map) or the output's outStride columns (epilogue).
 */
function checkFused(a: MatmulAttrs, pre: string): void {
  const fused = (f: FusedPointwise, width: number, what: string, prefix: string) => {
    if (a.rows !== 'T' || a.ropeKv) throw new Error(`${pre}: ${what} needs rows 'T' and no ropeKv`);
    for (const n of Object.keys(f.inputs))
      if (!n.startsWith(prefix) && !(what === 'xMap' && n === 'x'))
        throw new Error(`${pre}: ${what} input '${n}' must be named ${prefix}<name>`);
    const inputs = { ...f.inputs };
    if (what === 'epilogue')
      inputs[EPILOGUE_VALUE] = { perToken: true, cols: width, inner: width, repeat: 1 };
    try {
      pointwise.check({ op: 'pointwise', width, inputs, expr: f.expr });
    } catch (e) {
      throw new Error(`${pre}: ${what}: ${(e as Error).message}`);
    }
  };
  if (a.xMap) {
    if (a.prologue) throw new Error(`${pre}: xMap cannot be combined with a norm prologue`);
    if (!a.xMap.inputs.x?.perToken) throw new Error(`${pre}: xMap must read the activation 'x'`);
    fused(a.xMap, a.K, 'xMap', 'p_');
  }
  if (a.epilogue) {
    if (a.splits) throw new Error(`${pre}: epilogue cannot be combined with splits`);
    fused(a.epilogue, a.outStride, 'epilogue', 'e_');
  }
  if (a.splitXMaps) checkSplitXMaps(a, a.splitXMaps, pre, (f) => fused(f, a.K, 'xMap', 'p_'));
}

/**
 * Per-split x maps: one per split, the first being xMap, each naming xMap's inputs with the same
 * kinds and widths (only offsets may differ), so xMap's bindings serve them all.
 */
function checkSplitXMaps(
  a: MatmulAttrs,
  maps: FusedPointwise[],
  pre: string,
  checkOne: (f: FusedPointwise) => void,
): void {
  if (!a.xMap || !a.splits || maps.length !== a.splits.length)
    throw new Error(`${pre}: splitXMaps needs an xMap and one map per split`);
  if (maps[0] !== a.xMap && JSON.stringify(maps[0]) !== JSON.stringify(a.xMap))
    throw new Error(`${pre}: splitXMaps[0] must be xMap`);
  const names = Object.keys(a.xMap.inputs).sort().join(',');
  for (const [i, f] of maps.entries()) {
    if (Object.keys(f.inputs).sort().join(',') !== names)
      throw new Error(`${pre}: splitXMaps[${i}] must name xMap's inputs (${names})`);
    for (const [n, inp] of Object.entries(f.inputs)) {
      const x = a.xMap.inputs[n];
      if (inp.perToken !== x.perToken || inp.cols !== x.cols)
        throw new Error(`${pre}: splitXMaps[${i}] input '${n}' must have xMap's kind and width`);
    }
    checkOne(f);
  }
}

/** Output rows of one step and the first row of x they read. */
export function matmulRows(a: MatmulAttrs, step: StepShape): { rows: number; xRow0: number } {
  if (a.rows === 'T') return { rows: step.T, xRow0: 0 };
  if (step.L > step.T) throw new Error(`matmul rows 'L': L (${step.L}) > T (${step.T})`);
  return { rows: step.L, xRow0: step.T - step.L };
}

function need(inputs: Arrays, name: string, elems: number, what: string): Float32Array {
  const v = f32(inputs, name);
  if (v.length < elems)
    throw new Error(`matmul input '${name}' has ${v.length} elements; ${what} needs ${elems}`);
  return v;
}

/**
 * The inputs, in binding order. w has the dtype wType; the reference reads it as f32 values (what
 * the interpreter holds) and rounds them as that storage does, where a kernel binds the stored
 * bytes. A node that writes some
 * columns of a wider output after another node wrote the ones before (outOffset > 0, a split LM
 * head's later parts) also reads `out`, so those columns survive.
 */
function inputRules(a: MatmulAttrs): Record<string, TensorRule> {
  const wRows = a.gated ? 2 * a.N : a.N;
  const r: Record<string, TensorRule> = {
    ...(a.xMap ? fusedInputRules(a.xMap) : { x: rule(['T', a.K]) }),
    w: rule([wRows, a.K], 'read', a.wType),
  };
  if (a.bias) r.bias = rule([wRows]);
  if (a.residual) r.residual = rule([a.rows, a.N]);
  if (a.prologue) {
    r.normW = rule([a.prologueGroupWeight ? a.prologueGroup! : a.K]);
    if (a.prologueGate) r.gate = rule(['T', a.prologueGateCols?.cols ?? a.K]);
    if (a.prologue.kind === 'layer' && a.prologue.bias) r.normB = rule([a.K]);
  }
  if (a.epilogue) Object.assign(r, fusedInputRules(a.epilogue));
  if (a.conv) {
    const cv = a.conv;
    r.convW = cv.packedBias
      ? rule([cv.channels * (cv.kernel + 1)])
      : rule([cv.channels, cv.kernel]);
    if (cv.bias && !cv.packedBias) r.convB = rule([cv.channels]);
    Object.assign(r, convStateRules(cv));
  }
  const rope = a.ropeKv;
  if (rope) {
    // Attention without RoPE appends k and v as they are (rotaryDim 0): no tables.
    if (rope.rotaryDim > 0) {
      r.cos = rule([rope.capacity, rope.rotaryDim / 2]);
      r.sin = rule([rope.capacity, rope.rotaryDim / 2]);
    }
    r.kcache = inPlace([cacheRows(rope) * (rope.batch ?? 1), rope.kvCols], kvTypeOf(rope));
    r.vcache = inPlace([cacheRows(rope) * (rope.batch ?? 1), rope.kvCols], kvTypeOf(rope));
  } else if (a.outOffset > 0) {
    r.out = inPlace([a.rows, a.outStride]);
  }
  return r;
}

/** The conv epilogue's states, one per MatmulAttrs.conv.states entry, each updated in place. */
function convStateRules(cv: NonNullable<MatmulAttrs['conv']>): Record<string, TensorRule> {
  const rows = (cv.kernel - 1) * (cv.batch ?? 1);
  return Object.fromEntries(
    (cv.states ?? [cv.channels]).map((c, i) => [convStateName(i), inPlace([rows, c])]),
  );
}

/** Rows of a ropeKv matmul's caches: the ring's, else one per position up to capacity. */
export function cacheRows(rope: NonNullable<MatmulAttrs['ropeKv']>): number {
  return rope.ring ? rope.ring.rows : rope.capacity;
}

/** out [rows, outStride]; with ropeKv q as [T, qCols] and both caches; with splits out, out1, …. */
function outputRules(a: MatmulAttrs): Record<string, TensorRule> {
  const rope = a.ropeKv;
  if (rope) {
    return {
      out: rule(['T', rope.qCols]),
      kcache: inPlace([cacheRows(rope) * (rope.batch ?? 1), rope.kvCols], kvTypeOf(rope)),
      vcache: inPlace([cacheRows(rope) * (rope.batch ?? 1), rope.kvCols], kvTypeOf(rope)),
    };
  }
  const conv = a.conv ? convStateRules(a.conv) : ({} as Record<string, TensorRule>);
  if (a.splits) {
    return {
      ...Object.fromEntries(a.splits.map((n, i) => [splitOutput(i), rule([a.rows, n])])),
      ...conv,
    };
  }
  return { out: rule([a.rows, a.outStride], a.outOffset > 0 ? 'read_write' : 'read'), ...conv };
}

/**
 * The conv epilogue on one output row y (columns [0, channels)), as conv1d computes a step of
 * one token: `fresh` reads the incoming state as zeros (step.pos 0, first row).
 */
function convRow(
  cv: NonNullable<MatmulAttrs['conv']>,
  y: Float32Array,
  w: Float32Array,
  bias: Float32Array | undefined,
  states: Float32Array[],
  fresh: boolean,
): void {
  const K = cv.kernel;
  const S = K - 1;
  const off = cv.offset ?? 0;
  // Channel c0 + i of the conv is column i of state `state`, which holds C of them.
  let c0 = 0;
  for (const [si, C] of (cv.states ?? [cv.channels]).entries()) {
    const state = states[si];
    if (fresh) state.fill(0, 0, S * C);
    for (let i = 0; i < C; i++) {
      const c = c0 + i;
      const v = y[off + c];
      let s = bias ? bias[c] : 0;
      for (let j = 0; j < S; j++) s += w[c * K + j] * state[j * C + i];
      s += w[c * K + S] * v;
      for (let j = 0; j + 1 < S; j++) state[j * C + i] = state[(j + 1) * C + i];
      state[(S - 1) * C + i] = v;
      y[off + c] = cv.silu ? activate('silu', s) : s;
    }
    c0 += C;
  }
}

function reference(a: MatmulAttrs, inputs: Arrays, step: StepShape): Arrays {
  check(a);
  const { N, K } = a;
  const { rows, xRow0 } = matmulRows(a, step);
  const wRows = a.gated ? 2 * N : N;
  const x = a.xMap
    ? mappedX(a.xMap, inputs, rows, K)
    : need(inputs, 'x', (xRow0 + rows) * K, 'x [T, K]');
  // Per-split x maps: split i's columns read the rows its own map makes.
  const splitX = a.splitXMaps?.map((f) => mappedX(f, inputs, rows, K));
  const splitOf = new Int32Array(N);
  if (a.splits) {
    let c0 = 0;
    for (const [i, n] of a.splits.entries()) splitOf.fill(i, c0, (c0 += n));
  }
  const epi = a.epilogue;
  const epiArrays = epi ? fusedArrays(epi, inputs) : {};
  const wIn = need(inputs, 'w', wRows * K, 'w [N or 2N, K]');
  const w = roundWeight(a.wType, wIn.subarray(0, wRows * K), K);
  const bias = a.bias ? need(inputs, 'bias', wRows, 'bias') : undefined;
  const residual = a.residual
    ? need(inputs, 'residual', rows * N, 'residual [rows, N]')
    : undefined;
  const normW = a.prologue
    ? need(inputs, 'normW', a.prologueGroupWeight ? a.prologueGroup! : K, 'normW')
    : undefined;
  const gc = a.prologueGateCols ?? { cols: K, offset: 0 };
  const gate = a.prologueGate
    ? need(inputs, 'gate', (xRow0 + rows) * gc.cols, 'gate [T, cols]')
    : undefined;
  const normB =
    a.prologue?.kind === 'layer' && a.prologue.bias
      ? need(inputs, 'normB', K, 'normB [K]')
      : undefined;

  const rope = a.ropeKv;
  const batched = (rope?.batch ?? 1) > 1;
  const outStride = rope ? rope.qCols : a.outStride;
  const outOffset = rope ? 0 : a.outOffset;
  const outMin = rows * outStride;
  // out is read/write: columns outside [outOffset, outOffset + N) and rows past `rows` keep their values.
  // A split matmul computes the whole [rows, N] here; splitColumns copies it into its outputs.
  const prev = a.splits ? undefined : inputs.out;
  const out = prev instanceof Float32Array ? Float32Array.from(prev) : new Float32Array(outMin);
  if (out.length < outMin)
    throw new Error(`matmul output 'out' has ${out.length} elements; needs ${outMin}`);

  let kcache: Float32Array | undefined;
  let vcache: Float32Array | undefined;
  let cos: Float32Array | undefined;
  let sin: Float32Array | undefined;
  if (rope) {
    if (rope.ring && rows > rope.ring.rows - rope.ring.sink) {
      throw new Error(
        `matmul: a ropeKv step of ${rows} rows exceeds the ring's ${rope.ring.rows - rope.ring.sink} rows after its sinks`,
      );
    }
    // Batched (rope.batch): row r at step.pos (+ rowPos[r]), in its own slice of cacheRows rows.
    const end = batched
      ? cacheRows(rope) * rows * rope.kvCols
      : (rope.ring ? rope.ring.rows : step.pos + rows) * rope.kvCols;
    kcache = need(inputs, 'kcache', end, `kcache rows up to pos+T (${step.pos + rows})`);
    vcache = need(inputs, 'vcache', end, `vcache rows up to pos+T (${step.pos + rows})`);
    const half = rope.rotaryDim / 2;
    // Batched rows may sit apart (StepShape.rowPos): the table reaches the furthest one.
    const last = batched ? step.pos + 1 + Math.max(0, ...(step.rowPos ?? [])) : step.pos + rows;
    if (half > 0) {
      cos = need(inputs, 'cos', last * half, 'cos rows up to pos+T');
      sin = need(inputs, 'sin', last * half, 'sin rows up to pos+T');
    }
  }

  const cv = a.conv;
  const convLen = cv ? cv.channels * (cv.kernel + (cv.packedBias ? 1 : 0)) : 0;
  const convW = cv ? need(inputs, 'convW', convLen, 'convW') : undefined;
  const convB = !cv?.bias
    ? undefined
    : cv.packedBias
      ? convW!.subarray(cv.channels * cv.kernel, convLen)
      : need(inputs, 'convB', cv.channels, 'convB');
  const convStates = cv
    ? (cv.states ?? [cv.channels]).map((C, i) =>
        need(inputs, convStateName(i), (cv.kernel - 1) * C * (cv.batch ?? 1), convStateName(i)),
      )
    : undefined;

  const xr = new Float32Array(K);
  const y = new Float32Array(N);
  for (let r = 0; r < rows; r++) {
    const xOff = (xRow0 + r) * K;
    if (a.prologue && normW) {
      // Groups (prologueGroup) keep one weight per column of the row: perChannel.
      const grp = a.prologueGroup ?? K;
      normalizeRow(a.prologue, x, xOff, K, grp, normW, normB, xr, 0, !a.prologueGroupWeight);
      const g0 = (xRow0 + r) * gc.cols + gc.offset;
      if (gate) for (let k = 0; k < K; k++) xr[k] *= activate('silu', gate[g0 + k]);
    } else xr.set(x.subarray(xOff, xOff + K));
    if (a.xType === 'f16') for (let k = 0; k < K; k++) xr[k] = roundF16(xr[k]);
    for (let n = 0; n < N; n++) {
      let acc = 0;
      let accU = 0;
      const g = n * K;
      const u = (N + n) * K;
      if (splitX) {
        xr.set(splitX[splitOf[n]].subarray(xOff, xOff + K));
        if (a.xType === 'f16') for (let k = 0; k < K; k++) xr[k] = roundF16(xr[k]);
      }
      for (let k = 0; k < K; k++) acc += xr[k] * w[g + k];
      if (a.gated) for (let k = 0; k < K; k++) accU += xr[k] * w[u + k];
      if (bias) {
        acc += bias[n];
        if (a.gated) accU += bias[N + n];
      }
      let v = a.act ? activate(a.act, acc) : acc;
      if (a.gated) v *= accU;
      v *= a.scale;
      if (epi) v = evalFused(epi, epiArrays, r, outOffset + n, { [EPILOGUE_VALUE]: v });
      if (residual) v += residual[r * N + n];
      y[n] = v;
    }
    if (cv && convW && convStates) {
      // Batched: row r is sequence r with its own slice of each state.
      if ((cv.batch ?? 1) > 1) {
        const slices = convStates.map((st, i) => {
          const S = (cv.kernel - 1) * (cv.states ?? [cv.channels])[i];
          return st.subarray(r * S, (r + 1) * S);
        });
        convRow(cv, y, convW, convB, slices, step.pos === 0);
      } else convRow(cv, y, convW, convB, convStates, step.pos === 0 && r === 0);
    }
    if (rope && kcache && vcache) {
      const p = batched ? step.pos + (step.rowPos?.[r] ?? 0) : step.pos + r;
      const half = rope.rotaryDim / 2;
      const qk = rope.qCols + rope.kvCols;
      if (cos && sin) {
        for (let h = 0; h < qk; h += rope.headDim) {
          rotateHead(y, h, rope.rotaryDim, 'interleaved', cos, sin, p * half);
        }
      }
      out.set(y.subarray(0, rope.qCols), r * outStride);
      // An f16 cache holds each k and v rounded to f16, as the kernels store them.
      if (kvTypeOf(rope) === 'f16') for (let n = rope.qCols; n < N; n++) y[n] = roundF16(y[n]);
      const row =
        (batched ? r * cacheRows(rope) : 0) +
        (rope.ring ? cacheRow(rope.ring, rope.ring.rows, p) : p);
      kcache.set(y.subarray(rope.qCols, qk), row * rope.kvCols);
      vcache.set(y.subarray(qk, N), row * rope.kvCols);
    } else {
      out.set(y, r * outStride + outOffset);
    }
  }
  if (rope && kcache && vcache) return { out, kcache, vcache };
  const conv: Arrays = convStates
    ? Object.fromEntries(convStates.map((st, i) => [convStateName(i), st]))
    : {};
  if (a.splits) return { ...splitColumns(out, rows, N, a.splits, inputs), ...conv };
  return { out, ...conv };
}

function fusedArrays(f: FusedPointwise, inputs: Arrays): Record<string, Float32Array> {
  return Object.fromEntries(Object.keys(f.inputs).map((n) => [n, f32(inputs, n)]));
}

/** The x the products read under an x map: [rows, K], row t the expression at token t. */
function mappedX(f: FusedPointwise, inputs: Arrays, rows: number, K: number): Float32Array {
  const arrays = fusedArrays(f, inputs);
  const x = new Float32Array(rows * K);
  for (let t = 0; t < rows; t++)
    for (let k = 0; k < K; k++) x[t * K + k] = evalFused(f, arrays, t, k);
  return x;
}

/**
 * Outputs out, out1, … of a split matmul: the column ranges of the [rows, N] result y. Like
 * `out`, each is read/write: rows past `rows` keep what `prev` holds.
 */
function splitColumns(
  y: Float32Array,
  rows: number,
  N: number,
  splits: number[],
  prev: Arrays,
): Arrays {
  const outs: Arrays = {};
  let c0 = 0;
  for (const [i, n] of splits.entries()) {
    const p = prev[splitOutput(i)];
    const o = p instanceof Float32Array ? Float32Array.from(p) : new Float32Array(rows * n);
    if (o.length < rows * n)
      throw new Error(
        `matmul output '${splitOutput(i)}' has ${o.length} elements; needs ${rows * n}`,
      );
    for (let r = 0; r < rows; r++) o.set(y.subarray(r * N + c0, r * N + c0 + n), r * n);
    outs[splitOutput(i)] = o;
    c0 += n;
  }
  return outs;
}

function cost(a: MatmulAttrs, step: StepShape): Cost {
  const { rows } = matmulRows(a, step);
  const wRows = a.gated ? 2 * a.N : a.N;
  // In f32 words, the weight as its stored bytes.
  let read = dtypeBytes(a.wType, wRows * a.K) / 4 + rows * a.K;
  if (a.bias) read += wRows;
  if (a.residual) read += rows * a.N;
  if (a.prologue) read += a.prologue.kind === 'layer' && a.prologue.bias ? 2 * a.K : a.K;
  // prologueGate: the gate's rows, and silu and the product per element.
  if (a.prologueGate) read += rows * a.K;
  if (a.ropeKv) read += rows * a.ropeKv.rotaryDim; // cos + sin rows
  let flops = 2 * rows * a.K * wRows;
  if (a.prologueGate) flops += 5 * rows * a.K;
  for (const [f, width] of [
    [a.xMap, a.K],
    [a.epilogue, a.N],
  ] as const) {
    if (!f) continue;
    flops += rows * width * Math.max(1, exprFlops(f.expr));
    for (const [n, i] of Object.entries(f.inputs))
      if (n !== 'x') read += i.perToken ? rows * i.cols : i.cols;
  }
  let convWritten = 0;
  if (a.conv) {
    const { channels: C, kernel: Kc } = a.conv;
    flops += rows * C * (2 * Kc + (a.conv.bias ? 1 : 0) + (a.conv.silu ? 4 : 0));
    read += C * (Kc + (a.conv.bias ? 1 : 0)) + (Kc - 1) * C;
    convWritten = (Kc - 1) * C;
  }
  // k and v columns of a ropeKv matmul land in the caches, f16 ones at 2 bytes each.
  const kv = a.ropeKv ? 2 * a.ropeKv.kvCols : 0;
  return {
    flops,
    bytesRead: 4 * read,
    bytesWritten:
      4 * (rows * (a.N - kv) + convWritten) + (kv ? dtypeBytes(kvTypeOf(a.ropeKv), rows * kv) : 0),
  };
}

export const matmul: OpDefinition<MatmulAttrs> = {
  check,
  inputs: inputRules,
  outputs: outputRules,
  reference,
  cost,
};

/** Storage buffers (step uniform excluded) a matmul kernel with these attrs binds. */
export function matmulStorageBindings(a: MatmulAttrs): number {
  // A batched ropeKv epilogue also binds each row's position offset (codegen ROW_POS).
  return bindingCount(matmul, a) + ((a.ropeKv?.batch ?? 1) > 1 ? 1 : 0);
}
