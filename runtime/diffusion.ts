/**
 * The masked-diffusion sampler (LLaDA, with Fast-dLLM's threshold and caches) on a compiled
 * bundle: src/ops/diffusion.ts's loop, with each step's bidirectional forward run on the GPU.
 *
 * A full step resets the sequence and recomputes the whole canvas from position 0: the model's
 * attention is bidirectional, so a committed token changes every position's keys and values.
 * A cached step (Fast-dLLM, see DiffusionCache) rewinds the sequence to the block's start and
 * recomputes only its span there: the K/V rows before it (and, for `dual`, after it, made
 * visible through the step's `keys`) keep what the block's first, full step wrote. The canvas
 * must fit in one prefill chunk: split over two, the first chunk would not see the second.
 *
 * Where the pick runs: `host` (the default) reads the span's logits rows back and picks there
 * (argmax with seeded Gumbel noise, softmax confidence: pickRow); `gpu` runs the pick kernel
 * (codegen/kernels/diffusion-pick.ts) on the logits buffer in the step's own submission and
 * reads two words a row. Top-k and the threshold always run on the host, over those pairs.
 */
import {
  diffusionPickKernel,
  NONFINITE_PICK,
  PICK_WORDS,
} from '../codegen/kernels/diffusion-pick.ts';
import {
  diffusionSample,
  guidedForward,
  hostPicks,
  pickRowOf,
  type CanvasForward,
  type CanvasStep,
  type DiffusionRun,
  type Remasking,
  type StepCommit,
} from '../src/ops/diffusion.ts';
import { createStorage, logitsKernel, readBuffer } from './gpu.ts';
import { NonFiniteError } from './errors.ts';
import { firstLogitRow, type Sequence } from './model.ts';

export type DiffusionPick = 'host' | 'gpu';
export const DIFFUSION_PICKS: readonly DiffusionPick[] = ['host', 'gpu'];

/** Refuses a pick that is not one of DIFFUSION_PICKS (callers from plain JavaScript). */
export function checkPick(pick: string): void {
  if (!(DIFFUSION_PICKS as readonly string[]).includes(pick))
    throw new Error(`pick must be one of ${DIFFUSION_PICKS.join(', ')}, got ${pick}`);
}

export type { DiffusionRun, StepCommit } from '../src/ops/diffusion.ts';

/** Longest canvas (prompt + gen length) a sequence can denoise in one forward. */
export function maxCanvas(seq: Sequence): number {
  return Math.min(seq.model.manifest.phases.prefill.maxT, seq.capacity);
}

/**
 * Why this bundle cannot run the dual cache, or null: its bidirectional attention kernels must
 * read the step's `keys` (bundles compiled before it see only [0, pos + T), which would silently
 * drop the cached suffix).
 */
export function dualCacheIssue(seq: Sequence): string | null {
  const m = seq.model;
  const stale = m.manifest.kernels
    .filter((k) => k.name.startsWith('attention_') && /_full(_|$)/.test(k.name))
    .filter((k) => !(m.kernelCode(k.name) ?? '').includes('step.keys'))
    .map((k) => k.name);
  return stale.length
    ? `the bundle's attention kernels (${stale.join(', ')}) predate the dual cache (they cannot see cached rows after a block); recompile the bundle`
    : null;
}

/** The GPU forward of a canvas span: a full forward from 0, or a rewind and a partial one. */
export function gpuCanvasForward(seq: Sequence): CanvasForward {
  return async (canvas, span) => {
    if (span.from === 0 && span.to === canvas.length) {
      seq.reset();
      return (await seq.forward(canvas)).logits;
    }
    seq.rewind(span.from);
    const ids = canvas.subarray(span.from, span.to);
    return (await seq.forward(ids, undefined, { keys: canvas.length })).logits;
  };
}

/**
 * A CanvasStep that picks on the GPU: the span's forward, then the pick kernel over its logits
 * buffer in the same submission; only (token, confidence) of every span row comes back. Call
 * `destroy` when done.
 */
export function gpuPicks(
  seq: Sequence,
  remasking: Remasking,
): { step: CanvasStep; destroy: () => void } {
  const { device } = seq.model.gpu;
  const launch = diffusionPickKernel(
    seq.model.vocab,
    remasking,
    seq.model.gpu.caps.maxInvocationsPerWorkgroup,
  );
  const rowsMax = seq.model.manifest.phases.prefill.maxT;
  const picks = createStorage(device, rowsMax * PICK_WORDS * 4, 'diffusion.picks');
  const pickInto = logitsKernel(device, launch, { picks });
  const step: CanvasStep = async (canvas, span, want, pick) => {
    // Logits of the span's rows from the first wanted one on: the LM head skips the rows before
    // it (the exact sampler's canvas before the current block: over half its rows on average).
    const first = firstLogitRow(
      want.map((p) => pickRowOf(p, pick.shiftLogits)),
      span,
      `the positions to pick (${want.join(', ')})`,
    );
    const rows = span.to - first;
    const full = span.from === 0 && span.to === canvas.length;
    if (full) seq.reset();
    else seq.rewind(span.from);
    const record = (enc: GPUCommandEncoder, logits: GPUBuffer) =>
      pickInto.record(
        enc,
        logits,
        // The pick kernel's rows are positions first.., and its noise is drawn by position.
        { T: rows, pos: first, L: 1 },
        { seed: pick.seed, draw: pick.step, temperature: pick.temperature, topK: 0, topP: 1 },
      );
    await seq.forwardOnDevice(canvas.subarray(span.from, span.to), record, {
      keys: full ? 0 : canvas.length,
      rows,
    });
    const bytes = rows * PICK_WORDS * 4;
    const buf = await seq.model.readback(
      `diffusion pick of step ${pick.step}`,
      readBuffer(device, picks, bytes),
    );
    const words = new Uint32Array(buf);
    const conf = new Float32Array(buf);
    const tokens: number[] = [];
    const confidence: number[] = [];
    for (const p of want) {
      // Shifted logits (Dream): row p − 1's pick, drawn with that row's noise as on the host.
      const r = pickRowOf(p, pick.shiftLogits) - first;
      if (words[PICK_WORDS * r] === NONFINITE_PICK)
        throw new NonFiniteError(`diffusion step ${pick.step}`, p, 'a logit is NaN or Inf');
      tokens.push(words[PICK_WORDS * r]);
      confidence.push(conf[PICK_WORDS * r + 1]);
    }
    return { tokens, confidence, logits: null };
  };
  return {
    step,
    destroy: () => {
      pickInto.destroy();
      picks.destroy();
    },
  };
}

/**
 * Generate with the LLaDA sampler (threshold and cache as `run` says); `onStep` sees each step's
 * commits, the canvas after them and that step's logits (rows span.from..span.to − 1). Returns
 * the final canvas (prompt included).
 */
export async function diffusionGenerateGpu(
  seq: Sequence,
  prompt: ArrayLike<number>,
  run: DiffusionRun,
  onStep?: (
    c: StepCommit,
    canvas: Uint32Array,
    logits: Float32Array | null,
  ) => void | Promise<void>,
  pick: DiffusionPick = 'host',
): Promise<Uint32Array> {
  checkPick(pick);
  const n = prompt.length + run.genLength;
  const limit = maxCanvas(seq);
  if (n > limit) {
    const maxT = seq.model.manifest.phases.prefill.maxT;
    throw new Error(
      `the canvas of ${prompt.length} prompt + ${run.genLength} generated tokens (${n}) does not fit in one bidirectional forward: ` +
        `the bundle holds ${limit} (prefill maxT ${maxT}, capacity ${seq.capacity}); compile with --max-t ${n} --capacity ${n} or more, or shorten --gen-length`,
    );
  }
  if (run.cache === 'dual') {
    const issue = dualCacheIssue(seq);
    if (issue) throw new Error(`--cache dual: ${issue}`);
  }
  const vocab = seq.model.vocab;
  if (pick === 'host') {
    const f = gpuCanvasForward(seq);
    const guided = run.cfgScale > 0 ? guidedForward(f, prompt.length, run.maskId, run.cfgScale) : f;
    return diffusionSample(hostPicks(guided, vocab), prompt, vocab, run, onStep);
  }
  if (run.cfgScale > 0)
    throw new Error(
      `--pick gpu with cfg_scale ${run.cfgScale}: classifier-free guidance combines two forwards' logits on the host; use --pick host`,
    );
  const g = gpuPicks(seq, run.remasking);
  try {
    return await diffusionSample(g.step, prompt, vocab, run, onStep);
  } finally {
    g.destroy();
  }
}
