/**
 * Elementwise kernels (add, mul, concat, act, glu, softcap, state_rows) and the flat launch shape they
 * share with the embedding gather: one thread per element, or per vec4 when the
 * row width allows, over rows × width elements where rows is T (or L).
 */
import type {
  ActAttrs,
  AddAttrs,
  ConcatAttrs,
  GluAttrs,
  MulAttrs,
  SoftcapAttrs,
  StateRowsAttrs,
} from '../../src/graph/ops.ts';
import { act, add, concat, glu, mul, softcap, stateRows } from '../../src/ops/elementwise.ts';
import { STEP_WGSL, type GridDim, type GridSymbol, type KernelLaunch } from '../kernel-ir.ts';
import { type DeviceCaps } from '../../src/target.ts';
import type { GeneratedOp, KernelContext, KernelGenerator } from './types.ts';
import { actExpr, withHelpers } from './wgsl-math.ts';
import { definitionFor } from '../../src/ops/index.ts';
import { opBindings, wgslF32 } from './wgsl-builder.ts';

/** A number as a fragment of a kernel name: kernels whose code differs must have different names. */
export function nameNum(x: number): string {
  return String(x).replace(/[^0-9a-zA-Z]/g, '_');
}

export function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Threads per workgroup for streaming kernels: 256 is the WebGPU minimum limit and enough to hide latency. */
export function streamWorkgroup(caps: DeviceCaps): number {
  return Math.min(256, caps.maxInvocationsPerWorkgroup, caps.maxWorkgroupSizeX);
}

/**
 * Grid covering rows × perRow threads in workgroups of `wg`, rows = the symbol's
 * value. The x dimension holds ceil(rows·perRow / (wg·y)) workgroups; y > 1 only
 * when maxRows would overflow the per-dimension limit. The kernel's linear thread
 * index is FLAT_INDEX_WGSL.
 */
export function flatGrid(
  sym: GridSymbol,
  perRow: number,
  maxRows: number,
  wg: number,
  caps: DeviceCaps,
): [GridDim, GridDim, GridDim] {
  const groups = Math.ceil((maxRows * perRow) / wg);
  const y = Math.max(1, Math.ceil(groups / caps.maxWorkgroupsPerDimension));
  if (y > caps.maxWorkgroupsPerDimension) {
    throw new Error(`${maxRows} x ${perRow} elements need more workgroups than the device allows`);
  }
  return [{ sym, mul: perRow, div: wg * y }, y, 1];
}

/** Entry point signature and linear index for flatGrid launches (needs `const WG: u32`). */
export const FLAT_MAIN_WGSL = /* wgsl */ `@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * WG + lid;`;

/** Identifiers of the flat kernels' module scope and entry point (FLAT_MAIN_WGSL). */
const FLAT_RESERVED = ['WG', 'PER_ROW', 'main', 'wid', 'nwg', 'lid', 'i'];

interface ElementwiseSpec {
  name: string;
  /** Body of `fn op(<inputs>: f32) -> f32`, a WGSL expression over the op's input names. */
  expr: string;
  width: number;
  rows: GridSymbol;
}

/**
 * out = op(inputs) element by element, the inputs (the parameters of `fn op`, in order) and out
 * being the op's definition's bindings.
 */
function elementwise(
  a: AddAttrs | MulAttrs | ActAttrs | GluAttrs | SoftcapAttrs | StateRowsAttrs,
  spec: ElementwiseSpec,
  ctx: KernelContext,
): GeneratedOp {
  const { width } = spec;
  const vec = width % 4 === 0 ? 4 : 1;
  const perRow = width / vec;
  const wg = streamWorkgroup(ctx.caps);
  const inputs = Object.keys(definitionFor(a).inputs(a));
  const { bindings, decls } = opBindings(
    a,
    [...FLAT_RESERVED, 'op'],
    vec === 4 ? [...inputs, 'out'] : [],
  );
  const params = inputs.map((n) => `${n}: f32`).join(', ');
  const loads = inputs.map((n) => `  let v_${n} = ${n}[i];`).join('\n');
  const call = (c: string) => `op(${inputs.map((n) => `v_${n}${c}`).join(', ')})`;
  const value =
    vec === 4 ? `vec4<f32>(${['.x', '.y', '.z', '.w'].map(call).join(', ')})` : call('');
  const code = `${STEP_WGSL}
${decls}
const WG: u32 = ${wg}u;
const PER_ROW: u32 = ${perRow}u;
fn op(${params}) -> f32 {
  return ${spec.expr};
}
${FLAT_MAIN_WGSL}
  if (i >= step.${spec.rows} * PER_ROW) { return; }
${loads}
  out[i] = ${value};
}
`;
  const launch: KernelLaunch = {
    kernel: {
      name: `${spec.name}_w${width}${vec === 4 ? '_v4' : ''}_${spec.rows}`,
      code: withHelpers(code),
      bindings,
      workgroupSize: [wg, 1, 1],
    },
    grid: flatGrid(spec.rows, perRow, ctx.maxT, wg, ctx.caps),
  };
  return { launches: [launch], scratch: {} };
}

export const addKernel: KernelGenerator<AddAttrs> = (a, ctx) => {
  add.check(a);
  const scaled = a.scale !== 1;
  const sum = scaled ? `a + ${wgslF32(a.scale)} * b` : 'a + b';
  return elementwise(
    a,
    {
      name: `${scaled ? `add_s${nameNum(a.scale)}` : 'add'}${a.phased ? '_phased' : ''}`,
      // An encoding step's b holds whatever its slot last held: select, not a product, so that
      // not even a NaN there reaches out.
      expr: a.phased ? `select(a, ${sum}, step.keys > 0u)` : sum,
      width: a.width,
      rows: 'T',
    },
    ctx,
  );
};

/**
 * One thread per output element: the column within its group picks which input it copies from
 * (a plain concat is one group per row).
 */
export const concatKernel: KernelGenerator<ConcatAttrs> = (a, ctx) => {
  concat.check(a);
  const g = a.groups ?? 1;
  const ga = a.widthA / g;
  const gb = a.widthB / g;
  const W = a.widthA + a.widthB;
  const wg = streamWorkgroup(ctx.caps);
  const { bindings, decls } = opBindings(a, [...FLAT_RESERVED, 'WA', 'WB', 'W', 'grp', 'col']);
  const code = `${STEP_WGSL}
${decls}
const WG: u32 = ${wg}u;
const WA: u32 = ${ga}u;
const WB: u32 = ${gb}u;
const W: u32 = ${W}u;
${FLAT_MAIN_WGSL}
  if (i >= step.T * W) { return; }
  let grp = i / (WA + WB);
  let col = i % (WA + WB);
  if (col < WA) {
    out[i] = a[grp * WA + col];
  } else {
    out[i] = b[grp * WB + col - WA];
  }
}
`;
  const name = `concat_${a.widthA}_${a.widthB}${g === 1 ? '' : `_g${g}`}`;
  const launch: KernelLaunch = {
    kernel: { name, code, bindings, workgroupSize: [wg, 1, 1] },
    grid: flatGrid('T', W, ctx.maxT, wg, ctx.caps),
  };
  return { launches: [launch], scratch: {} };
};

export const mulKernel: KernelGenerator<MulAttrs> = (a, ctx) => {
  mul.check(a);
  return elementwise(a, { name: 'mul', expr: 'a * b', width: a.width, rows: 'T' }, ctx);
};

export const actKernel: KernelGenerator<ActAttrs> = (a, ctx) => {
  act.check(a);
  return elementwise(
    a,
    {
      name: `act_${a.act}`,
      expr: actExpr(a.act, 'x'),
      width: a.width,
      rows: 'T',
    },
    ctx,
  );
};

export const gluKernel: KernelGenerator<GluAttrs> = (a, ctx) => {
  glu.check(a);
  return elementwise(
    a,
    {
      name: `glu_${a.act}`,
      expr: `${actExpr(a.act, 'gate')} * up`,
      width: a.width,
      rows: 'T',
    },
    ctx,
  );
};

/** A copy: the state's first T rows are its first T·width elements. */
export const stateRowsKernel: KernelGenerator<StateRowsAttrs> = (a, ctx) => {
  stateRows.check(a);
  if (ctx.maxT > a.rows)
    throw new Error(`state_rows: a phase of up to ${ctx.maxT} rows reads a state of ${a.rows}`);
  return elementwise(a, { name: 'state_rows', expr: 'state', width: a.width, rows: 'T' }, ctx);
};

export const softcapKernel: KernelGenerator<SoftcapAttrs> = (a, ctx) => {
  softcap.check(a);
  return elementwise(
    a,
    {
      name: `softcap_${nameNum(a.cap)}`,
      expr: `${wgslF32(a.cap)} * tanh_acc(x / ${wgslF32(a.cap)})`,
      width: a.width,
      rows: a.rows,
    },
    ctx,
  );
};
