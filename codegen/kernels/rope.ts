/**
 * Standalone RoPE and KV-cache append kernels. Both are elementwise over [T, width] (the
 * append into an f16 cache over element pairs) with T read from the Step uniform; the grid is
 * (column blocks, T) so no dimension grows past the per-dimension workgroup limit for long prompts.
 */
import {
  kvTypeOf,
  type KvWriteAttrs,
  type RopeAttrs,
  type RopeLayout,
} from '../../src/graph/ops.ts';
import { kvWrite } from '../../src/ops/attention.ts';
import { rope } from '../../src/ops/rope.ts';
import { rowPosScratch, STEP_WGSL } from '../kernel-ir.ts';
import { type DeviceCaps } from '../../src/target.ts';
import type { KernelGenerator } from './types.ts';
import { opBindings, withRowPos } from './wgsl-builder.ts';
import { withHelpers } from './wgsl-math.ts';

function elementwiseWorkgroup(caps: DeviceCaps, width: number): number {
  const cap = Math.min(256, caps.maxInvocationsPerWorkgroup, caps.maxWorkgroupSizeX);
  let wg = 32;
  while (wg < cap && wg < width) wg *= 2;
  return Math.min(wg, cap);
}

/**
 * WGSL for one rotated element: `e` is the element's index within its head, `x(i)`
 * reads element i of the same head, `c(i)`/`s(i)` read the position's table entry i.
 * Returns the rotated value of element e (elements at e >= rotaryDim pass through).
 * Matches rotateHead in src/ops/math.ts: (x0, x1) -> (x0 c - x1 s, x1 c + x0 s).
 */
export function ropeElementWgsl(
  layout: Pick<RopeLayout, 'rotaryDim' | 'pairs'>,
  e: string,
  x: (i: string) => string,
  c: (i: string) => string,
  s: (i: string) => string,
): string {
  const half = layout.rotaryDim / 2;
  if (layout.pairs === 'half') {
    return `select(
      select(${x(`${e} - ${half}u`)} * ${s(`${e} - ${half}u`)} + ${x(e)} * ${c(`${e} - ${half}u`)},
             ${x(e)} * ${c(e)} - ${x(`${e} + ${half}u`)} * ${s(e)}, ${e} < ${half}u),
      ${x(e)}, ${e} >= ${layout.rotaryDim}u)`;
  }
  return `select(
      select(${x(`${e} - 1u`)} * ${s(`${e} / 2u`)} + ${x(e)} * ${c(`${e} / 2u`)},
             ${x(e)} * ${c(`${e} / 2u`)} - ${x(`${e} + 1u`)} * ${s(`${e} / 2u`)}, (${e} & 1u) == 0u),
      ${x(e)}, ${e} >= ${layout.rotaryDim}u)`;
}

export const ropeKernel: KernelGenerator<RopeAttrs> = (a, { caps, maxT }) => {
  rope.check(a);
  const ropeBatched = (a.batch ?? 1) > 1;
  const { bindings, decls } = withRowPos(
    ropeBatched,
    opBindings(a, ['WIDTH', 'HD', 'main', 'gid', 'col', 't', 'e', 'base', 'cs']),
  );
  const width = a.heads * a.headDim;
  const half = a.rotaryDim / 2;
  const wg = elementwiseWorkgroup(caps, width);
  // select() evaluates both arms, so indices are clamped into the head to stay in bounds.
  const xi = (i: string): string => `x[base + min(${i}, ${a.headDim - 1}u)]`;
  const ci = (i: string): string => `cos[cs + min(${i}, ${half - 1}u)]`;
  const si = (i: string): string => `sin[cs + min(${i}, ${half - 1}u)]`;
  const code = `${STEP_WGSL}
${decls}
const WIDTH = ${width}u;
const HD = ${a.headDim}u;
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let col = gid.x;
  let t = gid.y;
  if (col >= WIDTH || t >= step.T) { return; }
  let e = col % HD;
  let base = t * WIDTH + col - e;
  let cs = ${ropeBatched ? '(step.pos + row_pos[t])' : '(step.pos + t)'} * ${half}u;
  out[t * WIDTH + col] = ${ropeElementWgsl(a, 'e', xi, ci, si)};
}
`;
  return {
    launches: [
      {
        kernel: {
          // Batched (a.batch): row t (a sequence) is at step.pos + row_pos[t].
          name: `rope_${a.pairs}_h${a.heads}_d${a.headDim}_r${a.rotaryDim}_wg${wg}${ropeBatched ? '_batched' : ''}`,
          code,
          bindings,
          workgroupSize: [wg, 1, 1],
        },
        grid: [Math.ceil(width / wg), { sym: 'T' }, 1],
      },
    ],
    scratch: ropeBatched ? rowPosScratch(maxT) : {},
  };
};

/** WGSL: where a written element comes from in x and goes to in the cache row, for element `col`. */
function kvWriteIndices(a: KvWriteAttrs): { cols: number; src: string; dst: string } {
  const c = a.columns;
  if (c === null) return { cols: a.width, src: 't * WIDTH + col', dst: 'row * WIDTH + col' };
  kvWrite.check(a);
  const stride = a.width / c.heads;
  const xw = c.broadcast ? c.cols : c.heads * c.cols;
  const head = c.broadcast ? '0u' : `(col / ${c.cols}u) * ${c.cols}u`;
  return {
    cols: c.heads * c.cols,
    src: `t * ${xw}u + ${head} + col % ${c.cols}u`,
    dst: `row * WIDTH + (col / ${c.cols}u) * ${stride}u + ${c.offset}u + col % ${c.cols}u`,
  };
}

/**
 * The append. f32 caches: one thread per element. f16 caches (kvType 'f16', u32 words of two
 * halves): one thread per pair of adjacent elements, which is one whole word (row widths, head
 * widths and column ranges are even, as the definition checks), so no two threads write halves
 * of one word; each value is rounded to nearest even by f16_pack2 (wgsl-math.ts), as the
 * reference rounds it.
 */
export const kvWriteKernel: KernelGenerator<KvWriteAttrs> = (a, { caps, maxT }) => {
  kvWrite.check(a);
  const ix = kvWriteIndices(a);
  const f16 = kvTypeOf(a) === 'f16';
  const batched = (a.batch ?? 1) > 1;
  const { bindings, decls } = withRowPos(
    batched,
    opBindings(a, [
      'WIDTH',
      'COLS',
      'CAPACITY',
      'main',
      'gid',
      'col',
      't',
      'row',
      'src',
      'f16_pack2',
      'f16_bits',
      'SINK',
      'RING',
      'cache_row',
      'lrow',
    ]),
  );
  // Threads per row: elements, or element pairs of an f16 cache.
  const threads = f16 ? ix.cols / 2 : ix.cols;
  const wg = elementwiseWorkgroup(caps, threads);
  const c = a.columns;
  const variant = c === null ? '' : `_h${c.heads}x${c.cols}at${c.offset}${c.broadcast ? 'b' : ''}`;
  // A ring cache (KvRing) puts position j at cacheRow(ring, capacity, j).
  const ring = a.ring ?? null;
  // Batched (a.batch): row t is sequence t at step.pos + row_pos[t], written into its own
  // CAPACITY rows.
  const at = batched ? 'step.pos + row_pos[t]' : 'step.pos + t';
  const rowOf = ring ? `cache_row(${at})` : at;
  const seqRow = batched ? '\n  let row = t * CAPACITY + lrow;' : '';
  const lrow = batched ? 'lrow' : 'row';
  const ringFn = ring
    ? `const SINK = ${ring.sink}u;
const RING = ${a.capacity - ring.sink}u;
fn cache_row(j: u32) -> u32 { return select(SINK + (j - SINK) % RING, j, j < SINK); }`
    : '';
  // Under f16, col is the pair's first (even) element, so dst is even and dst, dst + 1 are one
  // word; src + 1 is the pair's second element, in the same head since column counts are even.
  const body = f16
    ? `let col = 2u * gid.x;
  let t = gid.y;
  let ${lrow} = ${rowOf};
  if (col >= COLS || t >= step.T || ${lrow} >= CAPACITY) { return; }${seqRow}
  let src = ${ix.src};
  cache[(${ix.dst}) >> 1u] = f16_pack2(x[src], x[src + 1u]);`
    : `let col = gid.x;
  let t = gid.y;
  let ${lrow} = ${rowOf};
  if (col >= COLS || t >= step.T || ${lrow} >= CAPACITY) { return; }${seqRow}
  cache[${ix.dst}] = x[${ix.src}];`;
  const code = withHelpers(`${STEP_WGSL}
${decls}
const WIDTH = ${a.width}u;
const COLS = ${ix.cols}u;
const CAPACITY = ${a.capacity}u;
${ringFn}
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  ${body}
}
`);
  return {
    launches: [
      {
        kernel: {
          name: `kv_write_w${a.width}${variant}${f16 ? '_kv16' : ''}_c${a.capacity}${ring ? `_ring${ring.sink}` : ''}_wg${wg}${batched ? '_batched' : ''}`,
          code,
          bindings,
          workgroupSize: [wg, 1, 1],
        },
        grid: [Math.ceil(threads / wg), { sym: 'T' }, 1],
      },
    ],
    scratch: batched ? rowPosScratch(maxT) : {},
  };
};
