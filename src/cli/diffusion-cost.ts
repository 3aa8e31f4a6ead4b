/**
 * What a diffusion schedule costs per generated token, by the cost model (graphCost), beside an
 * autoregressive model of the same weights: `strata inspect` on a diffusion spec.
 *
 *  - The sampler: every step of every block, each a forward over its span (stepSpan: the whole
 *    canvas, or with a cache the block and what follows, or the block against cached keys).
 *    With a threshold the number of steps depends on the confidences; the count here is the
 *    schedule's, the most a block can take.
 *    Classifier-free guidance doubles every forward.
 *  - Autoregressive: the prompt's prefill once, then one decode step per token at its position.
 */
import type { Graph } from '../graph/ir.ts';
import { addCost, ZERO_COST, type Cost } from '../graph/ops.ts';
import { stepSpan, type DiffusionRun } from '../ops/diffusion.ts';
import { graphCost } from './report.ts';

export interface ScheduleCost {
  /** Forwards in all, and canvas rows they recompute in all. */
  forwards: number;
  rows: number;
  total: Cost;
}

/** The sampler's forwards for a prompt of `prompt` tokens, on the prefill graph. */
export function diffusionScheduleCost(g: Graph, prompt: number, run: DiffusionRun): ScheduleCost {
  const n = prompt + run.genLength;
  const blocks = run.genLength / run.blockLength;
  const perBlock = run.steps / blocks;
  let total = ZERO_COST;
  let forwards = 0;
  let rows = 0;
  for (let b = 0; b < blocks; b++) {
    const block = { from: prompt + b * run.blockLength, to: prompt + (b + 1) * run.blockLength };
    for (let i = 0; i < perBlock; i++) {
      const span = stepSpan(run.cache ?? 'none', i, block, n);
      // Classifier-free guidance runs each (full) forward twice: with and without the prompt.
      const times = run.cfgScale > 0 ? 2 : 1;
      const c = graphCost(g, span.to - span.from, span.from, n);
      for (let k = 0; k < times; k++) total = addCost(total, c);
      forwards += times;
      rows += times * (span.to - span.from);
    }
  }
  return { forwards, rows, total };
}

/**
 * An autoregressive model's cost of the same answer: the prompt's prefill, whose last row gives
 * the first token, then a decode step for each further token (with no prompt, a decode step for
 * every token from position 0).
 */
export function autoregressiveCost(
  prefill: Graph,
  decode: Graph,
  prompt: number,
  genLength: number,
): Cost {
  if (prompt === 0) {
    let total = ZERO_COST;
    for (let t = 0; t < genLength; t++) total = addCost(total, graphCost(decode, 1, t));
    return total;
  }
  let total = graphCost(prefill, prompt, 0);
  for (let t = 0; t < genLength - 1; t++) total = addCost(total, graphCost(decode, 1, prompt + t));
  return total;
}
