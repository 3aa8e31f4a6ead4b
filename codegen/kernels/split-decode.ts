/**
 * One decode token's attention for a kv head's group of query heads, with the keys split over
 * workgroups: shared by NSA's compressed and selected branches (codegen/kernels/nsa.ts) and H2O
 * (codegen/kernels/h2o.ts). One workgroup per kv head left 8 of an H100's 132 SMs working: NSA
 * decode at 128k ran at 0.36× dense attention's speed, H2O at 32k at 0.07× (a budget of 4,100 rows
 * read by 64 threads a layer).
 *
 * A part launch gives each (kv head, split) its share of the keys and leaves its max, sum and
 * unnormalised outputs in the SPLIT_PART scratch (the exponentials, relative to the split's max,
 * in the caller's score scratch P); a combine launch per kv head merges them into the outputs,
 * and may go on to read each key's probability as its split's exponential rescaled to the merged
 * max (NSA's block importances, H2O's accumulated scores).
 *
 * The kernels' constants (KVH, HD, KVW, GROUP, SCALE, WG = SPLIT_WG, NEG) come from the caller.
 * Key rows are read through accessors, so a cache of f16 pairs reads as one of f32.
 */
import { STEP_BINDING, STEP_WGSL, storageDecls } from '../kernel-ir.ts';
import { wgReductionsWgsl } from './wg-reduce.ts';

/** Threads per workgroup of the part and combine launches: a power of two (tree reductions). */
export const SPLIT_WG = 64;
/** Scratch of the part launches' partial max, sum and outputs per (kv head, split). */
export const SPLIT_PART = 'split_part';

/** An element of a cache, by the WGSL index expression of an f32 element. */
export type Reader = (index: string) => string;

/** Splits of n keys, at most maxSplits, about `keys` keys each; and keys per split. */
export function keySplits(n: number, keys: number, maxSplits: number) {
  const splits = Math.max(1, Math.min(maxSplits, Math.ceil(n / keys)));
  return { splits, keys: Math.ceil(n / splits) };
}

/**
 * The scores, max and exponentials of a group's query heads over keys `i` from `start` to below
 * `end` (step WG): scores into at(g), the workgroup max m[g], then exp(score − m) back into at(g)
 * and its sum so far in sm[g] (per thread). Key i's row is `j` after `skip` (which may continue
 * past a key with no row); `keep`, when given, is whether key i counts (else its exponential is 0).
 * `score` maps the scaled dot product (a softcap); the identity by default.
 */
export function scoresWgsl(o: {
  i: string;
  start: string;
  end: string;
  at: (g: string) => string;
  k: Reader;
  j: string;
  skip: string;
  keep?: string;
  score?: (x: string) => string;
}): string {
  const { i, at } = o;
  const score = o.score ?? ((x: string) => x);
  const e = o.keep
    ? `let keep = ${o.keep};
      for (var g = 0u; g < GROUP; g++) {
        let e = select(0.0, exp(${at('g')} - m[g]), keep);`
    : `for (var g = 0u; g < GROUP; g++) {
        let e = exp(${at('g')} - m[g]);`;
  return `    var mx = array<f32, GROUP>();
    for (var g = 0u; g < GROUP; g++) { mx[g] = NEG; }
    for (var ${i} = ${o.start}; ${i} < ${o.end}; ${i} += WG) {
      ${o.skip}var s = array<f32, GROUP>();
      for (var d = 0u; d < HD; d++) {
        let kd = ${o.k(`${o.j} * KVW + h * HD + d`)};
        for (var g = 0u; g < GROUP; g++) { s[g] += q[q0 + g * HD + d] * kd; }
      }
      for (var g = 0u; g < GROUP; g++) {
        let x = ${score('s[g] * SCALE')};
        ${at('g')} = x;
        mx[g] = max(mx[g], x);
      }
    }
    var m = array<f32, GROUP>();
    for (var g = 0u; g < GROUP; g++) { m[g] = wg_max(mx[g], tid); }
    var sm = array<f32, GROUP>();
    for (var ${i} = ${o.start}; ${i} < ${o.end}; ${i} += WG) {
      ${e}
        ${at('g')} = e;
        sm[g] += e;
      }
    }`;
}

/**
 * The part launch's body for split `sp` of kv head h (t = 0): keys i in [lo, hi) (row `row(i)`,
 * NONE skipped), scores into P[(h · N + i) · GROUP + g], the split's max, exp(score − max)
 * back into P, the sum, and the unnormalised outputs, all into the part scratch.
 */
export function partWgsl(o: {
  P: string;
  n: string;
  keys: string;
  N: string;
  k: Reader;
  v: Reader;
  row?: string;
  score?: (x: string) => string;
}): string {
  const at = (g: string) => `${o.P}[(h * ${o.N} + i) * GROUP + ${g}]`;
  const jOf = o.row
    ? `let j = ${o.row};\n      if (j == NONE) { continue; }\n      `
    : 'let j = i;\n      ';
  return `  let h = wid.x;
  let sp = wid.z;
  let t = 0u;
  let p = step.pos;
  let q0 = h * GROUP * HD;
  let lo = sp * ${o.keys};
  let hi = min(${o.n}, lo + ${o.keys});
${scoresWgsl({ i: 'i', start: 'lo + tid', end: 'hi', at, k: o.k, j: 'j', skip: jOf, keep: o.row ? `${o.row} != NONE` : undefined, score: o.score })}
  let w0 = (h * SPLITS + sp) * PART_W;
  for (var g = 0u; g < GROUP; g++) {
    let z = wg_sum(sm[g], tid);
    if (tid == 0u) {
      ${SPLIT_PART}[w0 + g] = m[g];
      ${SPLIT_PART}[w0 + GROUP + g] = z;
    }
  }
  storageBarrier();
  for (var x = tid; x < GROUP * HD; x += WG) {
    let g = x / HD;
    let d = x % HD;
    var acc = 0.0;
    for (var i = lo; i < hi; i++) {
      ${jOf}acc += ${at('g')} * ${o.v('j * KVW + h * HD + d')};
    }
    ${SPLIT_PART}[w0 + 2u * GROUP + x] = acc;
  }`;
}

/**
 * The combine launch's merge for kv head h: each split's weight exp(m_s − m) (0 for a split with
 * no keys), the merged sum's inverse in inv[g] (0 when no key counts) and the outputs. Key i of
 * split s then has probability P[i, g] · exp(part max of s − m[g]) · inv[g] (`splitProb`).
 */
export const COMBINE_WGSL = `  let h = wid.x;
  let t = 0u;
  let p = step.pos;
  let q0 = h * GROUP * HD;
  var m = array<f32, GROUP>();
  var inv = array<f32, GROUP>();
  for (var g = 0u; g < GROUP; g++) {
    var mm = NEG;
    for (var s = 0u; s < SPLITS; s++) {
      let w0 = (h * SPLITS + s) * PART_W;
      if (${SPLIT_PART}[w0 + GROUP + g] > 0.0) { mm = max(mm, ${SPLIT_PART}[w0 + g]); }
    }
    var z = 0.0;
    for (var s = 0u; s < SPLITS; s++) {
      let w0 = (h * SPLITS + s) * PART_W;
      let l = ${SPLIT_PART}[w0 + GROUP + g];
      if (l > 0.0) { z += l * exp(${SPLIT_PART}[w0 + g] - mm); }
    }
    m[g] = mm;
    inv[g] = select(0.0, 1.0 / z, z > 0.0);
  }
  for (var x = tid; x < GROUP * HD; x += WG) {
    let g = x / HD;
    var o = 0.0;
    for (var s = 0u; s < SPLITS; s++) {
      let w0 = (h * SPLITS + s) * PART_W;
      if (${SPLIT_PART}[w0 + GROUP + g] > 0.0) {
        o += ${SPLIT_PART}[w0 + 2u * GROUP + x] * exp(${SPLIT_PART}[w0 + g] - m[g]);
      }
    }
    out[q0 + x] = o * inv[g];
  }`;

/**
 * In the combine, after COMBINE_WGSL: query head g's probability of key i, whose exponential
 * (relative to its split's max) is `e` and whose split starts every `keys` keys.
 */
export function splitProb(e: string, i: string, keys: string, g: string): string {
  return `${e} * exp(${SPLIT_PART}[(h * SPLITS + ${i} / ${keys}) * PART_W + ${g}] - m[${g}]) * inv[${g}]`;
}

export interface SplitBinding {
  name: string;
  access: 'read' | 'read_write';
  elem?: string;
}

/** Storage declarations numbered from binding 1, with their binding list (step first). */
export function declareBindings(list: SplitBinding[]) {
  return {
    decls: storageDecls([STEP_BINDING, ...list]),
    bindings: [STEP_BINDING, ...list.map(({ name, access }) => ({ name, access }))],
  };
}

/** The two decode launches of a split attention (see the header). */
export function splitLaunches(o: {
  name: string;
  consts: string;
  splits: number;
  /** Floats of P (the caller's score scratch): kvHeads · keys · group. */
  pFloats: number;
  partInputs: SplitBinding[];
  /** WGSL functions of the part launch alone (they may read its bindings). */
  partFns?: string;
  part: string;
  combineOutputs: SplitBinding[];
  combine: string;
  /** Whether the combine reads the part's exponentials in P. */
  combineReadsP: boolean;
  P: string;
  a: { kvHeads: number; heads: number; headDim: number };
}) {
  // A split's words: max and sum per query head of the group, then its HD outputs each.
  const partW = (o.a.heads / o.a.kvHeads) * (o.a.headDim + 2);
  const head = `${o.consts}
const SPLITS = ${o.splits}u;
const PART_W = ${partW}u;

var<workgroup> red_x: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;
var<workgroup> red_i: array<u32, WG>;
${wgReductionsWgsl('red_x')}`;
  const scratchIo = [
    { name: o.P, access: 'read_write' as const },
    { name: SPLIT_PART, access: 'read_write' as const },
  ];
  const part = declareBindings([...o.partInputs, ...scratchIo]);
  // The combine binds the scores only where it reads them (a binding WGSL never reads is not in
  // the pipeline's layout).
  const comb = declareBindings([
    ...(o.combineReadsP ? scratchIo : scratchIo.slice(1)),
    ...o.combineOutputs,
  ]);
  const code = (decls: string, body: string, fns = '') => `${STEP_WGSL}
${decls}
${head}${fns}
@compute @workgroup_size(${SPLIT_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
${body}
}
`;
  return {
    launches: [
      {
        kernel: {
          name: `${o.name}_part_s${o.splits}`,
          code: code(part.decls, o.part, o.partFns),
          bindings: part.bindings,
          workgroupSize: [SPLIT_WG, 1, 1] as [number, number, number],
        },
        grid: [o.a.kvHeads, 1, o.splits] as [number, number, number],
      },
      {
        kernel: {
          name: `${o.name}_combine_s${o.splits}`,
          code: code(comb.decls, o.combine),
          bindings: comb.bindings,
          workgroupSize: [SPLIT_WG, 1, 1] as [number, number, number],
        },
        grid: [o.a.kvHeads, 1, 1] as [number, number, number],
      },
    ],
    scratch: { [o.P]: 4 * o.pFloats, [SPLIT_PART]: 4 * o.a.kvHeads * o.splits * partW },
  };
}
