/**
 * Batched decode: B sequences advance in one step of a bundle compiled with `--batch B`
 * (src/ops/batch.ts). Every matmul then reads its weights once for all B rows, which is what
 * makes batching pay on a bandwidth-bound decode.
 *
 * Each sequence has a slot: slice s of every KV cache and recurrent state. A prompt is prefilled
 * into its slot alone, in ceil(T / maxT) steps of the bundle's prefill phase, which is one
 * sequence's (codegen/compile.ts): it runs on a spare set of one sequence's state buffers
 * (`staging`), which are then copied into the slot, so the other slots' bytes are never written
 * and the slot ends exactly as a single-sequence prefill leaves its own caches (same kernels,
 * same shapes). The batched decode step then advances every slot by a token, each at its own
 * position: prompts of different lengths leave the slots apart, and row s sits at
 * step.pos + row_pos[s] (codegen/kernel-ir.ts ROW_POS), step.pos being the lowest.
 * Whole-run state (MoE load counters; manifest `shared`) has no slots: a prefill adds to it.
 *
 * States reset themselves when the step's position is 0, for every row alike; so a batched
 * step takes rows that are either all at position 0 or all past it (prefill fills position 0 of
 * every slot that generate() uses), and step() refuses a mix.
 *
 * Sampling: sequence s samples with seed + s (the kernel's per-row seed; its prefill passes
 * seed + s), its kth token with draw k, so it draws exactly what one sequence seeded seed + s
 * draws alone, whatever the other prompts' lengths.
 */
import { GREEDY, ROW_POS, type SamplingParams } from '../codegen/kernel-ir.ts';
import { createStorage, readBuffer, upload, withErrorScopes, writeStep } from './gpu.ts';
import {
  promptChunks,
  record,
  TOKEN_BYTES,
  type BoundPhase,
  type GenerateOptions,
  type GpuModel,
  type StopReason,
} from './model.ts';
import { CapacityError, DeviceError, NonFiniteError } from './errors.ts';
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

/** What prefill() leaves: the token sampled after the prompt, and its logits row. */
export interface SlotPrefill {
  token: number;
  /** [vocab] logits of the prompt's last token, when asked for. */
  logits?: Float32Array;
}

export interface BatchGenerateOptions extends GenerateOptions {
  /** Keep the logits row that each generated token was sampled from. */
  logits?: boolean;
  /** Called after each prefill step: prompt `slot`, `done` of its `total` tokens prefilled. */
  onPrefill?: (slot: number, done: number, total: number) => void;
}

/** Why `prompts` prompts cannot run in a bundle of `batch` slots, or null when they fit. */
export function batchOverflow(prompts: number, batch: number): string | null {
  return prompts > batch
    ? `${prompts} prompts exceed the bundle's batch of ${batch} sequences (compile with --batch ${prompts} or more)`
    : null;
}

/** B sequences of one batched bundle: their KV caches and recurrent states, one slot each. */
export class BatchSequence {
  /** Tokens each slot holds (its next position). */
  readonly positions: number[];
  /** Batched decode steps run since the last reset(). */
  steps = 0;
  private readonly state = new Map<string, GPUBuffer>();
  /** One sequence's state buffers, where a slot's prompt is prefilled before its copy in. */
  private readonly staging = new Map<string, GPUBuffer>();
  /** Bytes of one slot of each per-sequence state buffer (not the shared ones). */
  private readonly slotBytes = new Map<string, number>();
  private readonly decode: BoundPhase;
  private readonly prefillPhase: BoundPhase;

  constructor(readonly model: GpuModel) {
    const { device } = model.gpu;
    const B = this.batch;
    if (B > 1 && model.manifest.compile.batchPrefill !== 'slot')
      throw new Error(
        `this bundle (--batch ${B}) was compiled before batch slots had their own prefill: its ` +
          `prefill phase is the batched step; recompile it`,
      );
    for (const s of model.manifest.state) {
      const n = numel(s.shape);
      const whole = createStorage(device, dtypeBytes(s.dtype, n), s.name);
      this.state.set(s.name, whole);
      // Whole-run state (MoE load counters): a slot's prefill adds to it in place.
      if (s.shared) {
        this.staging.set(s.name, whole);
        continue;
      }
      const one = dtypeBytes(s.dtype, n / B);
      if (n % B !== 0 || one % 4 !== 0)
        throw new Error(
          `state ${s.name} [${s.shape.join(', ')}] does not split into ${B} word-aligned slots`,
        );
      this.staging.set(s.name, createStorage(device, one, `${s.name}.staging`));
      this.slotBytes.set(s.name, one);
    }
    this.decode = model.bindPhase('decode', this.state);
    this.prefillPhase = model.bindPhase('prefill', this.staging);
    this.positions = Array<number>(B).fill(0);
  }

  /** Sequences per step: the bundle's compile-time batch. */
  get batch(): number {
    return this.model.manifest.compile.batch ?? 1;
  }

  get capacity(): number {
    return this.model.manifest.compile.capacity;
  }

  /** Tokens per prefill step. */
  get maxT(): number {
    return this.prefillPhase.shared.spec.maxT;
  }

  /** Empty every slot (states reset themselves at position 0). */
  reset(): void {
    this.positions.fill(0);
    this.steps = 0;
  }

  /**
   * Prefill `slot` with `prompt` from position 0 (whatever it held), in ceil(T / maxT) steps of
   * one sequence, leaving every other slot's state as it was. Returns the token sampled after
   * the prompt (sampling as given: pass seed + slot to draw as generate() does) and, when
   * asked, its logits row. `onStep(done)` follows long prompts.
   */
  async prefill(
    slot: number,
    prompt: ArrayLike<number>,
    sampling: SamplingParams = GREEDY,
    opts: { logits?: boolean; onStep?: (done: number) => void } = {},
  ): Promise<SlotPrefill> {
    return (await this.submitPrefill(slot, prompt, sampling, opts))();
  }

  /**
   * Submit the prefill of `slot` and the readback of its sampled token (and logits row): each
   * readback's copy is queued right behind the slot's last step, so the next slot's prefill may
   * follow on the queue before anything is awaited (generate() prefills every slot so, one
   * submission after another). Resolves once submitted, to the function that awaits the
   * results; with `onStep`, after each step has run on the device (progress of a long prompt).
   */
  private async submitPrefill(
    slot: number,
    prompt: ArrayLike<number>,
    sampling: SamplingParams,
    opts: { logits?: boolean; onStep?: (done: number) => void },
  ): Promise<() => Promise<SlotPrefill>> {
    const B = this.batch;
    if (!Number.isInteger(slot) || slot < 0 || slot >= B)
      throw new Error(`slot ${slot} is not one of the batch's 0..${B - 1}`);
    if (prompt.length === 0) throw new Error(`prompt of slot ${slot} is empty`);
    if (prompt.length > this.capacity)
      throw new CapacityError(
        prompt.length,
        this.capacity,
        `the prompt of slot ${slot} (${prompt.length} tokens) exceeds the KV cache capacity ${this.capacity}`,
      );
    const { device } = this.model.gpu;
    const b = this.prefillPhase;
    const steps: { name: string; errors: ReturnType<typeof withErrorScopes> }[] = [];
    for (const { at, ids } of promptChunks(prompt, this.maxT)) {
      const p = { T: ids.length, pos: at, L: 1 };
      const last = at + ids.length === prompt.length;
      const name = `prefill of slot ${slot}, positions ${at}..${at + ids.length - 1}`;
      this.model.checkDevice(name);
      const errors = withErrorScopes(device, () => {
        upload(device, b.shared.io.ids, ids);
        writeStep(device, b.shared.step, p, sampling);
        const enc = device.createCommandEncoder();
        const pass = enc.beginComputePass();
        for (const c of b.calls) record(pass, c, p);
        pass.end();
        // The slot takes the prompt's state only when it is whole: the others are never written.
        if (last) {
          for (const [n, bytes] of this.slotBytes)
            enc.copyBufferToBuffer(
              this.staging.get(n)!,
              0,
              this.state.get(n)!,
              slot * bytes,
              bytes,
            );
        }
        device.queue.submit([enc.finish()]);
      });
      steps.push({ name, errors });
      if (opts.onStep) {
        await device.queue.onSubmittedWorkDone();
        opts.onStep(at + ids.length);
      }
    }
    const name = steps[steps.length - 1].name;
    // Queued now, behind the last step: the next slot's prefill overwrites these buffers after.
    const token = this.model.readback(name, readBuffer(device, b.shared.io.token, TOKEN_BYTES));
    const logits = opts.logits
      ? this.model.readback(name, readBuffer(device, b.shared.io.logits, this.model.vocab * 4))
      : undefined;
    // Unawaited until the results are asked for; a rejection is still seen there.
    token.catch(() => {});
    logits?.catch(() => {});
    this.positions[slot] = prompt.length;
    return async () => {
      const words = new Uint32Array(await token);
      const row = logits ? new Float32Array(await logits) : undefined;
      for (const st of steps) {
        const e = await st.errors;
        if (e) throw new DeviceError(st.name, e.kind, e.message);
      }
      this.model.checkDevice(name);
      if (words[1] === NONFINITE_LOGITS) throw new NonFiniteError(name, prompt.length - 1);
      return { token: words[0], ...(row ? { logits: row } : {}) };
    };
  }

  /**
   * One batched step: ids[s] is slot s's token at its position. Returns each slot's sampled
   * token (and the step's logits); throws a NonFiniteError naming the first slot whose logits
   * were not finite. Every slot advances a position.
   */
  async step(
    ids: ArrayLike<number>,
    sampling: SamplingParams = GREEDY,
    wantLogits = false,
  ): Promise<BatchStep> {
    const B = this.batch;
    if (ids.length !== B) throw new Error(`a batched step takes ${B} tokens, got ${ids.length}`);
    const full = this.positions.findIndex((p) => p >= this.capacity);
    if (full >= 0)
      throw new Error(
        `slot ${full} is at position ${this.positions[full]}, past the KV cache capacity ${this.capacity}`,
      );
    const base = Math.min(...this.positions);
    if (base === 0 && this.positions.some((p) => p > 0))
      throw new Error(
        `slot ${this.positions.indexOf(0)} is empty while others hold tokens: prefill it first ` +
          `(a batched step resets states at position 0 for every slot alike)`,
      );
    const { device } = this.model.gpu;
    const name = `batched decode at positions ${this.positions.join(', ')}`;
    this.model.checkDevice(name);
    const b = this.decode;
    const p = { T: B, pos: base, L: B };
    const rowPos = b.shared.scratch.get(ROW_POS);
    const errors = withErrorScopes(device, () => {
      upload(device, b.shared.io.ids, Uint32Array.from(ids));
      if (rowPos)
        upload(
          device,
          rowPos,
          Uint32Array.from(this.positions, (q) => q - base),
        );
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
        throw new NonFiniteError(`${name} (sequence ${s})`, this.positions[s]);
      tokens[s] = words[2 * s];
    }
    for (let s = 0; s < B; s++) this.positions[s]++;
    this.steps++;
    return { tokens, logits };
  }

  /**
   * Generate up to maxTokens for each prompt (at most `batch` of them; spare slots take the
   * first prompt's first token, and their output is dropped). Each prompt is prefilled into its
   * slot, which samples its first token; then batched steps run until every sequence has
   * stopped, at a stop token, at maxTokens, or with its slot full ('capacity').
   */
  async generate(
    prompts: readonly ArrayLike<number>[],
    opts: BatchGenerateOptions,
  ): Promise<BatchResult> {
    const B = this.batch;
    if (prompts.length === 0) throw new Error('generate() needs at least one prompt');
    const over = batchOverflow(prompts.length, B);
    if (over) throw new Error(over);
    const empty = prompts.findIndex((p) => p.length === 0);
    if (empty >= 0) throw new Error(`prompt ${empty} is empty`);
    const n = prompts.length;
    const rows = Array.from({ length: B }, (_, s) =>
      s < n ? Array.from(prompts[s]) : [prompts[0][0]],
    );
    const tokens: number[][] = rows.map(() => []);
    const logits: Float32Array[][] = rows.map(() => []);
    const stops: (StopReason | null)[] = rows.map((_, s) => (s < n ? null : 'max-tokens'));
    if (opts.maxTokens < 1)
      return { tokens: tokens.slice(0, n), stops: stops.slice(0, n).map(() => 'max-tokens') };
    const vocab = this.model.vocab;
    const sampling = (draw: number): SamplingParams => ({
      seed: opts.seed ?? 0,
      draw,
      temperature: opts.temperature ?? 0,
      topK: opts.topK ?? 0,
      topP: opts.topP ?? 1,
    });
    const take = (s: number, token: number, row?: Float32Array) => {
      if (stops[s] !== null) return;
      tokens[s].push(token);
      if (row) logits[s].push(row);
      if (opts.stopTokens?.includes(token)) stops[s] = 'stop-token';
      else if (tokens[s].length >= opts.maxTokens) stops[s] = 'max-tokens';
    };
    this.reset();
    // Every slot's prefill is queued before any result is awaited (submitPrefill).
    const pending: (() => Promise<SlotPrefill>)[] = [];
    const base = sampling(0);
    const onPrefill = opts.onPrefill;
    for (let s = 0; s < B; s++) {
      pending.push(
        await this.submitPrefill(
          s,
          rows[s],
          { ...base, seed: base.seed + s },
          {
            logits: opts.logits === true && s < n,
            ...(onPrefill ? { onStep: (done: number) => onPrefill(s, done, rows[s].length) } : {}),
          },
        ),
      );
    }
    const feed: number[] = [];
    for (let s = 0; s < B; s++) {
      const r = await pending[s]();
      take(s, r.token, r.logits);
      feed.push(r.token);
    }
    for (let draw = 1; stops.some((r) => r === null); draw++) {
      for (let s = 0; s < B; s++) {
        if (this.positions[s] < this.capacity) continue;
        stops[s] ??= 'capacity';
        // A stopped slot keeps stepping (the batch moves together) on its last row.
        this.positions[s] = this.capacity - 1;
      }
      if (stops.every((r) => r !== null)) break;
      const r = await this.step(feed, sampling(draw), opts.logits === true);
      for (let s = 0; s < B; s++) {
        take(s, r.tokens[s], r.logits?.slice(s * vocab, (s + 1) * vocab));
        feed[s] = r.tokens[s];
      }
    }
    return {
      tokens: tokens.slice(0, n),
      stops: stops.slice(0, n) as StopReason[],
      ...(opts.logits ? { logits: logits.slice(0, n) } : {}),
    };
  }

  /** @internal Every slot's state buffers, by name (tests read them back). */
  stateBuffers(): ReadonlyMap<string, GPUBuffer> {
    return this.state;
  }

  destroy(): void {
    for (const b of new Set([...this.state.values(), ...this.staging.values()])) b.destroy();
  }
}
