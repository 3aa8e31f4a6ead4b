/**
 * Embedding gather: one thread per output element (vec4 when dim allows).
 * Threads whose token id falls outside this node's [rowStart, rowStart + rows)
 * write nothing, which is what lets split tables share one `out`.
 */
import type { EmbedAttrs } from '../../src/graph/ops.ts';
import { embed } from '../../src/ops/embedding.ts';
import { STEP_WGSL, type KernelLaunch } from '../kernel-ir.ts';
import type { KernelGenerator } from './types.ts';
import { FLAT_MAIN_WGSL, flatGrid, nameNum, streamWorkgroup } from './elementwise.ts';
import { opBindings, wgslF32 } from './wgsl-builder.ts';
import { weightBinding } from './weight-load.ts';

export const embedKernel: KernelGenerator<EmbedAttrs> = (a, { caps, maxT }) => {
  embed.check(a);
  const vec = a.dim % 4 === 0 ? 4 : 1;
  const perRow = a.dim / vec;
  const wg = streamWorkgroup(caps);
  // The table through the one weight reader, whatever its storage (f32, f16, q8, q4).
  const table = weightBinding(a.tableType, a.rows * a.dim, vec === 4);
  // A split table's node reads out as well (the rows it leaves alone): one read_write binding.
  const { bindings, decls } = opBindings(
    a,
    [
      'WG',
      'PER_ROW',
      'ROW_START',
      'ROWS',
      'main',
      'wid',
      'nwg',
      'lid',
      'i',
      't',
      'r',
      'load_table',
    ],
    vec === 4 ? ['out'] : [],
    { table },
  );
  const scaled = a.scale === 1 ? '' : ` * ${wgslF32(a.scale)}`;
  const code = `${STEP_WGSL}
${decls}
const WG: u32 = ${wg}u;
const PER_ROW: u32 = ${perRow}u;
const ROW_START: u32 = ${a.rowStart}u;
const ROWS: u32 = ${a.rows}u;
${table.load('load_table', 'table')}
${FLAT_MAIN_WGSL}
  if (i >= step.T * PER_ROW) { return; }
  let t = i / PER_ROW;
  let r = ids[t] - ROW_START;
  // u32 wrap-around makes ids below ROW_START fail this test too.
  if (r >= ROWS) { return; }
  out[i] = load_table(r * PER_ROW + (i - t * PER_ROW))${scaled};
}
`;
  const split = a.rowStart > 0 || a.rows < a.vocab ? `_rows${a.rowStart}_${a.rows}` : '';
  const launch: KernelLaunch = {
    kernel: {
      name: `embed_d${a.dim}${vec === 4 ? '_v4' : ''}${a.tableType === 'f32' ? '' : `_${a.tableType}`}${split}${a.scale === 1 ? '' : `_s${nameNum(a.scale)}`}`,
      code,
      bindings,
      workgroupSize: [wg, 1, 1],
    },
    grid: flatGrid('T', perRow, maxT, wg, caps),
  };
  return { launches: [launch], scratch: {} };
};
