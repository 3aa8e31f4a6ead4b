/**
 * Block diffusion (BD3-LM) on a compiled bundle: src/ops/block-diffusion.ts's loop with an exact
 * KV cache of the committed blocks.
 *
 * The sequence's cache rows [0, exact) hold the final K/V of committed positions. A step over
 * the current block [from, to) rewinds to `exact` and runs [exact, to): at a block's first step
 * that recomputes the blocks committed since (the prompt's whole blocks at the first one, then
 * the block just finished) together with the new block, so every committed block's K/V are
 * written in their final form exactly once and no extra forward is spent on storing them
 * (bd3lms runs one more forward per block, store_kv). Its later steps run the block alone.
 * Under the block-causal mask a committed row never sees the block after it, so running them
 * together changes nothing in them; the attention kernels bound keys at the end of the query's
 * block, so cache rows past it (stale) are never read.
 *
 * A forward of more rows than one prefill chunk is split at block boundaries (a chunk that split
 * a block would keep its first rows from seeing the rest of it); the sampler block must fit in
 * one chunk. The LM head runs over the rows from the first one a step commits to the end of the
 * chunk, and only the logits of the rows it commits come back (a first-hitting step: one row,
 * not the block's), or with `pick` gpu only their tokens (codegen/kernels/block-draw.ts: the host
 * draw took about 28 ms a row at LLaDA's 126k vocab on the H100's host, more than a forward).
 */
import {
  blockDiffusionSample,
  type BlockDiffusionRun,
  type BlockDraw,
  type BlockForward,
  type OnBlockStep,
} from '../src/ops/block-diffusion.ts';
import type { Span } from '../src/ops/diffusion.ts';
import { blockDrawKernel } from '../codegen/kernels/block-draw.ts';
import { NONFINITE_PICK } from '../codegen/kernels/diffusion-pick.ts';
import { createStorage, logitsKernel, readBuffer } from './gpu.ts';
import { checkPick, type DiffusionPick } from './diffusion.ts';
import { NonFiniteError } from './errors.ts';
import { firstLogitRow, type Sequence } from './model.ts';

export type { BlockDiffusionRun, BlockStepCommit } from '../src/ops/block-diffusion.ts';

/**
 * The bundle's attention block (every attention kernel's blockCausal, which must agree), or why
 * the bundle cannot run block diffusion.
 */
export function attentionBlock(seq: Sequence): number | string {
  const blocks = new Set<number | null>();
  for (const l of seq.model.manifest.model.layers) {
    const m = l.mixer;
    if (!m) return `layer ${l.index} has no mixer`;
    if (m.kind !== 'attention')
      return `layer ${l.index} has a ${m.kind} mixer (block diffusion needs block-causal attention)`;
    blocks.add(m.blockCausal ?? null);
  }
  if (blocks.has(null) || blocks.size !== 1)
    return `every attention layer needs the same block_causal block, got ${[...blocks].map((b) => b ?? 'none').join(', ')}`;
  return [...blocks][0]!;
}

/**
 * The cached forward: rows [exact, span.to) from position `exact`, in block-aligned chunks, the
 * last of which copies the wanted rows' logits aside in its own submission; only those come back
 * (`forward`), or, with `draw`, the draw kernel runs over them in the same submission and only
 * their tokens come back.
 */
export function cachedBlockForward(
  seq: Sequence,
  blockLength: number,
  run?: Pick<BlockDiffusionRun, 'seed' | 'temperature' | 'nucleusP' | 'maskId'>,
): { forward: BlockForward; draw: BlockDraw | null; destroy: () => void } {
  const maxT = seq.model.manifest.phases.prefill.maxT;
  if (blockLength > maxT)
    throw new Error(
      `a block of ${blockLength} rows does not fit in one prefill chunk of ${maxT}: compile with --max-t ${blockLength} or more`,
    );
  const { device } = seq.model.gpu;
  const vocab = seq.model.vocab;
  const rowBytes = vocab * 4;
  const picked = createStorage(device, blockLength * rowBytes, 'block diffusion rows');
  let exact = 0;
  seq.reset();
  /** The chunks up to span.to, the last one's wanted rows copied into `picked`, then `more`. */
  const rowsOnDevice = async (
    canvas: Uint32Array,
    span: Span,
    rows: readonly number[],
    more: (enc: GPUCommandEncoder) => void,
  ) => {
    if (span.from < exact || span.from % blockLength !== 0)
      throw new Error(
        `block forward over rows ${span.from}..${span.to - 1}: the cache is exact up to ${exact}`,
      );
    seq.rewind(exact);
    // Whole blocks before the span while the rest does not fit one chunk.
    let at = exact;
    const per = Math.floor(maxT / blockLength) * blockLength;
    while (span.to - at > maxT) {
      await seq.forwardOnDevice(canvas.subarray(at, at + per), () => {});
      at += per;
    }
    // Logits from the first wanted row on: the LM head skips the rows before it.
    const first = firstLogitRow(rows, { from: at, to: span.to }, 'block forward');
    await seq.forwardOnDevice(
      canvas.subarray(at, span.to),
      (enc, logits) => {
        rows.forEach((p, k) =>
          enc.copyBufferToBuffer(logits, (p - first) * rowBytes, picked, k * rowBytes, rowBytes),
        );
        more(enc);
      },
      { rows: span.to - first },
    );
    // Everything before the span is committed and now written in its final form.
    exact = span.from;
  };
  const forward: BlockForward = async (canvas, span, rows) => {
    await rowsOnDevice(canvas, span, rows, () => {});
    const bytes = rows.length * rowBytes;
    return new Float32Array(
      await seq.model.readback('block diffusion logits', readBuffer(device, picked, bytes)),
    );
  };
  if (!run) return { forward, draw: null, destroy: () => picked.destroy() };
  const launch = blockDrawKernel(vocab, run.maskId, seq.model.gpu.caps.maxInvocationsPerWorkgroup);
  const positions = createStorage(device, blockLength * 4, 'block diffusion positions');
  const picks = createStorage(device, blockLength * 4, 'block diffusion picks');
  const kernel = logitsKernel(device, launch, { positions, picks });
  const draw: BlockDraw = async (canvas, span, rows, step) => {
    device.queue.writeBuffer(positions, 0, Uint32Array.from(rows));
    await rowsOnDevice(canvas, span, rows, (enc) =>
      kernel.record(
        enc,
        picked,
        { T: rows.length, pos: 0, L: 1 },
        { seed: run.seed, draw: step, temperature: run.temperature, topK: 0, topP: run.nucleusP },
      ),
    );
    const tokens = new Uint32Array(
      await seq.model.readback(
        `block diffusion draw of step ${step}`,
        readBuffer(device, picks, rows.length * 4),
      ),
    );
    const bad = tokens.indexOf(NONFINITE_PICK);
    if (bad >= 0)
      throw new NonFiniteError(`block diffusion step ${step}`, rows[bad]!, 'a logit is NaN or Inf');
    return tokens;
  };
  return {
    forward,
    draw,
    destroy: () => {
      kernel.destroy();
      for (const b of [picked, positions, picks]) b.destroy();
    },
  };
}

/**
 * Generate with the block-diffusion sampler; `onStep` sees each step's commits, the canvas after
 * them and the block's logits (null with `pick` gpu: the draw kernel draws next to them and only
 * tokens come back). Returns the final canvas (prompt included).
 */
export async function blockDiffusionGenerateGpu(
  seq: Sequence,
  prompt: ArrayLike<number>,
  run: BlockDiffusionRun,
  onStep?: OnBlockStep,
  pick: DiffusionPick = 'host',
): Promise<Uint32Array> {
  const B = attentionBlock(seq);
  if (typeof B === 'string') throw new Error(`block diffusion: ${B}`);
  if (run.blockLength % B !== 0)
    throw new Error(
      `block length ${run.blockLength} must be a multiple of the model's attention block ${B}`,
    );
  const n = prompt.length + run.genLength;
  if (n > seq.capacity)
    throw new Error(
      `the canvas of ${prompt.length} prompt + ${run.genLength} generated tokens (${n}) does not fit in the KV cache of ${seq.capacity} rows: compile with --capacity ${n} or more, or shorten --gen-length`,
    );
  checkPick(pick);
  const f = cachedBlockForward(seq, run.blockLength, pick === 'gpu' ? run : undefined);
  try {
    return await blockDiffusionSample(
      f.forward,
      prompt,
      seq.model.vocab,
      run,
      onStep,
      f.draw ?? undefined,
    );
  } finally {
    f.destroy();
  }
}
