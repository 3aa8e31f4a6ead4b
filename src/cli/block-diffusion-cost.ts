/**
 * What a block-diffusion (BD3-LM) schedule costs per generated token, by the cost model
 * (graphCost), for `strata inspect` beside the LLaDA schedule and an autoregressive model.
 *
 * The cached sampler (runtime/block-diffusion.ts): a block's first step runs the rows committed
 * since the last forward (the prompt's whole blocks, or the block just finished) with the new
 * block; each later step runs the block alone against the exact cache. first_hitting takes one
 * step (one forward) per mask; ddpm takes at most `steps` steps a block, fewer forwards when a
 * step commits nothing (the count here is the most).
 */
import type { Graph } from '../graph/ir.ts';
import { addCost, ZERO_COST } from '../graph/ops.ts';
import { samplerBlocks, type BlockDiffusionRun } from '../ops/block-diffusion.ts';
import type { ScheduleCost } from './diffusion-cost.ts';
import { graphCost } from './report.ts';

export function blockScheduleCost(g: Graph, prompt: number, run: BlockDiffusionRun): ScheduleCost {
  const n = prompt + run.genLength;
  let total = ZERO_COST;
  let forwards = 0;
  let rows = 0;
  let exact = 0;
  for (const block of samplerBlocks(prompt, n, run.blockLength)) {
    const masks = block.to - Math.max(block.from, prompt);
    const steps = run.sampler === 'first_hitting' ? masks : Math.min(run.steps, masks);
    for (let i = 0; i < steps; i++) {
      const from = i === 0 ? exact : block.from;
      total = addCost(total, graphCost(g, block.to - from, from, block.to));
      forwards++;
      rows += block.to - from;
    }
    exact = block.from;
  }
  return { forwards, rows, total };
}
