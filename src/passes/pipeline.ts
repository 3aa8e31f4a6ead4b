/** The ordered pass list applied to every phase graph, with a log for `strata inspect --passes`. */
import type { Graph } from '../graph/ir.ts';
import type { DeviceCaps } from '../target.ts';
import { FUSION_PASSES } from './fuse.ts';
import { splitOversizeParams } from './split.ts';
import { checkShapes } from './shapes.ts';
import { assignPrecision, type Precision } from './precision.ts';

export interface PassOptions {
  caps: DeviceCaps;
  /** Run the fusion passes (false gives the unfused graph, for comparison and debugging). */
  fuse: boolean;
  /** How weights are stored (src/passes/precision.ts); f32 when absent. */
  precision?: Precision;
  /** Parameters that stay f32 whatever the precision (another phase reads them in f32). */
  keepF32?: ReadonlySet<string>;
}

export interface PassLogEntry {
  pass: string;
  graph: Graph;
}

export function runPasses(g: Graph, opts: PassOptions): { graph: Graph; log: PassLogEntry[] } {
  const log: PassLogEntry[] = [{ pass: 'lowered', graph: g }];
  const passes: { name: string; run: (g: Graph, o: { caps: DeviceCaps }) => Graph }[] = [
    ...(opts.fuse ? FUSION_PASSES : []),
    // After fusion (which concatenates weights) and before splitting (which sizes by bytes).
    {
      name: 'assign-precision',
      run: (g) => assignPrecision(g, opts.precision ?? 'f32', opts.caps, opts.keepF32),
    },
    { name: 'split-oversize-params', run: splitOversizeParams },
  ];
  let cur = g;
  checkShapes(cur);
  for (const p of passes) {
    cur = p.run(cur, { caps: opts.caps });
    checkShapes(cur);
    log.push({ pass: p.name, graph: cur });
  }
  return { graph: cur, log };
}
