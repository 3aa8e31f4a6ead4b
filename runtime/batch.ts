/**
 * Batched decode: B sequences advance in one step of a bundle compiled with `--batch B`
 * (src/ops/batch.ts). Every matmul then reads its weights once for all B rows, which is what
 * makes batching pay on a bandwidth-bound decode.
 *
 * A static batch, kept simple: all sequences sit at the same position, and prompts are fed one
 * token per step through the batched step itself (teacher forcing). Sequence s at step p feeds
 * its prompt token p while it has one and its last sampled token after, so prompts of different
 * lengths need no padding or per-sequence positions: a shorter prompt just starts generating
 * earlier. The cost is that a prompt of n tokens takes n steps rather than one prefill; prefill
 * into batch slots is left for later (docs in the report of issue 18).
 *
 * Sampling: sequence s samples with seed + s (the kernel's per-row seed), so with equal-length
 * prompts it draws exactly what one sequence seeded seed + s draws alone.
 */
import { GREEDY, type SamplingParams } from '../codegen/kernel-ir.ts';
import { createStorage, readBuffer, upload, withErrorScopes, writeStep } from './gpu.ts';
import {
  record,
  TOKEN_BYTES,
  type BoundPhase,
  type GenerateOptions,
  type GpuModel,
  type StopReason,
} from './model.ts';
import { DeviceError, NonFiniteError } from './errors.ts';
import { NONFINITE_LOGITS } from '../src/ops/sampling.ts';
import { numel } from '../formats/safetensors.ts';
import { dtypeBytes } from '../src/graph/dtype.ts';

export interface BatchStep {
  /** Sequence s's sampled token at [s]. */
  tokens: Uint32Array;
  /** [B, vocab] logits of the step, when asked for. */
  logits?: Float32Array;
}

export interface BatchResult {
  /** Generated tokens of each prompt, in the order given. */
  tokens: number[][];
  /** Why each sequence stopped. */
  stops: StopReason[];
  /** With `logits`: each generated token's logits row ([vocab]), per prompt. */
  logits?: Float32Array[][];
}

export interface BatchGenerateOptions extends GenerateOptions {
  /** Keep the logits row that each generated token was sampled from. */
  logits?: boolean;
}

/** B sequences of one batched bundle: their KV caches and recurrent states, one slice each. */
export class BatchSequence {
  /** Position of every sequence (they advance together). */
  pos = 0;
  private readonly state = new Map<string, GPUBuffer>();
  private readonly bound: BoundPhase;

  constructor(readonly model: GpuModel) {
    const { device } = model.gpu;
    for (const s of model.manifest.state) {
      this.state.set(s.name, createStorage(device, dtypeBytes(s.dtype, numel(s.shape)), s.name));
    }
    this.bound = model.bindPhase('decode', this.state);
  }

  /** Sequences per step: the bundle's compile-time batch. */
  get batch(): number {
    return this.model.manifest.compile.batch ?? 1;
  }

  get capacity(): number {
    return this.model.manifest.compile.capacity;
  }

  /** Start every sequence over (states reset themselves at position 0). */
  reset(): void {
    this.pos = 0;
  }

  /**
   * One step: ids[s] is sequence s's token at the current position. Returns each sequence's
   * sampled token (and the step's logits); throws a NonFiniteError naming the first sequence
   * whose logits were not finite.
   */
  async step(
    ids: ArrayLike<number>,
    sampling: SamplingParams = GREEDY,
    wantLogits = false,
  ): Promise<BatchStep> {
    const B = this.batch;
    if (ids.length !== B) throw new Error(`a batched step takes ${B} tokens, got ${ids.length}`);
    if (this.pos >= this.capacity)
      throw new Error(`position ${this.pos} is past the KV cache capacity ${this.capacity}`);
    const { device } = this.model.gpu;
    const name = `batched decode at position ${this.pos}`;
    this.model.checkDevice(name);
    const b = this.bound;
    const p = { T: B, pos: this.pos, L: B };
    const errors = withErrorScopes(device, () => {
      upload(device, b.shared.io.ids, Uint32Array.from(ids));
      writeStep(device, b.shared.step, p, sampling);
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      for (const c of b.calls) record(pass, c, p);
      pass.end();
      device.queue.submit([enc.finish()]);
    });
    const words = new Uint32Array(
      await this.model.readback(name, readBuffer(device, b.shared.io.token, B * TOKEN_BYTES)),
    );
    const logits = wantLogits
      ? new Float32Array(
          await this.model.readback(
            name,
            readBuffer(device, b.shared.io.logits, B * this.model.vocab * 4),
          ),
        )
      : undefined;
    const e = await errors;
    if (e) throw new DeviceError(name, e.kind, e.message);
    this.model.checkDevice(name);
    const tokens = new Uint32Array(B);
    for (let s = 0; s < B; s++) {
      if (words[2 * s + 1] === NONFINITE_LOGITS)
        throw new NonFiniteError(`${name} (sequence ${s})`, this.pos);
      tokens[s] = words[2 * s];
    }
    this.pos++;
    return { tokens, logits };
  }

  /**
   * Generate up to maxTokens for each prompt (at most `batch` of them; fewer fill the spare rows
   * with a copy of the first, whose output is dropped). Runs from position 0. A sequence stops
   * at a stop token or maxTokens; the batch runs until all have, or until the cache is full
   * (those still running stop with 'capacity').
   */
  async generate(
    prompts: readonly ArrayLike<number>[],
    opts: BatchGenerateOptions,
  ): Promise<BatchResult> {
    const B = this.batch;
    if (prompts.length === 0) throw new Error('generate() needs at least one prompt');
    if (prompts.length > B)
      throw new Error(
        `${prompts.length} prompts exceed the bundle's batch of ${B} sequences (compile with --batch ${prompts.length} or more)`,
      );
    const empty = prompts.findIndex((p) => p.length === 0);
    if (empty >= 0) throw new Error(`prompt ${empty} is empty`);
    const rows = Array.from({ length: B }, (_, s) => Array.from(prompts[s] ?? prompts[0]));
    const n = prompts.length;
    const shortest = Math.min(...rows.map((r) => r.length));
    const tokens: number[][] = rows.map(() => []);
    const logits: Float32Array[][] = rows.map(() => []);
    const stops: (StopReason | null)[] = rows.map((_, s) => (s < n ? null : 'max-tokens'));
    if (opts.maxTokens < 1)
      return { tokens: tokens.slice(0, n), stops: stops.slice(0, n).map(() => 'max-tokens') };
    const vocab = this.model.vocab;
    this.reset();
    let feed = rows.map((r) => r[0]);
    while (stops.some((r) => r === null)) {
      if (this.pos >= this.capacity) {
        for (let s = 0; s < B; s++) stops[s] ??= 'capacity';
        break;
      }
      const at = this.pos;
      // Token k of every sequence with prompts as long as the shortest draws draw k, as alone.
      const sampling: SamplingParams = {
        seed: opts.seed ?? 0,
        draw: Math.max(0, at + 1 - shortest),
        temperature: opts.temperature ?? 0,
        topK: opts.topK ?? 0,
        topP: opts.topP ?? 1,
      };
      const r = await this.step(feed, sampling, opts.logits === true);
      feed = rows.map((row, s) => {
        if (at + 1 < row.length) return row[at + 1];
        if (stops[s] === null) {
          tokens[s].push(r.tokens[s]);
          if (r.logits) logits[s].push(r.logits.slice(s * vocab, (s + 1) * vocab));
          if (opts.stopTokens?.includes(r.tokens[s])) stops[s] = 'stop-token';
          else if (tokens[s].length >= opts.maxTokens) stops[s] = 'max-tokens';
        }
        return r.tokens[s];
      });
    }
    return {
      tokens: tokens.slice(0, n),
      stops: stops.slice(0, n) as StopReason[],
      ...(opts.logits ? { logits: logits.slice(0, n) } : {}),
    };
  }

  destroy(): void {
    for (const b of this.state.values()) b.destroy();
  }
}
