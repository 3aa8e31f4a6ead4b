/**
 * Runs a compiled bundle on a WebGPU device. Browser-safe: bundle files come
 * through a BundleSource (the Node adapter reads them from disk; a browser
 * fetches them). Each step records all of a phase's dispatches into one
 * command buffer; the Step uniform carries T, position and sampling settings.
 */
import type { Kernel, SamplingParams } from '../codegen/kernel-ir.ts';
import { GREEDY, resolveGridDim } from '../codegen/kernel-ir.ts';
import type { BundleManifest, BundleSource, ManifestPhase, Progress } from '../codegen/manifest.ts';
import {
  checkKernel,
  createStepBuffer,
  createStorage,
  pipelineFor,
  readBuffer,
  upload,
  watchDevice,
  withErrorScopes,
  writeStep,
  type GpuContext,
} from './gpu.ts';
import { NONFINITE_LOGITS } from '../src/ops/sampling.ts';
import { checkBundleFits, checkKernelFeatures } from './fits.ts';
import { numel } from '../formats/safetensors.ts';
import { dtypeBytes } from '../src/graph/dtype.ts';
import { wordAligner } from './weights-stream.ts';

import { CapacityError, DeviceError, DeviceLostError, NonFiniteError } from './errors.ts';
import { BundleError } from './manifest-check.ts';
import { median } from './dispatch-profile.ts';

/**
 * Upload the weights a source streams (BundleSource.streamTensors): every buffer first, then each
 * piece written at its offset as it arrives; afterwards every tensor must have been written whole.
 */
async function streamWeights(
  device: GPUDevice,
  m: BundleManifest,
  src: BundleSource,
  params: Map<string, GPUBuffer>,
  guard: (what: string, body: () => void) => void,
): Promise<void> {
  const want = new Map(m.tensors.map((t) => [t.name, dtypeBytes(t.dtype, numel(t.shape))]));
  const written = new Map<string, number>();
  guard('allocation of the weight buffers', () => {
    for (const [name, bytes] of want) params.set(name, createStorage(device, bytes, name));
  });
  await src.streamTensors!((name, offset, bytes) => {
    const buf = params.get(name);
    const size = want.get(name);
    if (!buf || size === undefined)
      throw new BundleError(
        `the bundle's weights stream sent tensor '${name}', not in the manifest`,
      );
    if (offset + bytes.byteLength > Math.ceil(size / 4) * 4)
      throw new BundleError(
        `the bundle's weights stream sent bytes ${offset}..${offset + bytes.byteLength} of tensor '${name}', which has ${size}`,
      );
    upload(device, buf, bytes, offset);
    written.set(name, (written.get(name) ?? 0) + bytes.byteLength);
  });
  for (const [name, size] of want) {
    if ((written.get(name) ?? 0) < size)
      throw new BundleError(
        `tensor '${name}': the weights stream sent ${written.get(name) ?? 0} of its ${size} bytes`,
      );
  }
}

export { CapacityError, DeviceError, DeviceLostError, NonFiniteError } from './errors.ts';
export { DeviceLimitError } from './fits.ts';

type PhaseName = 'prefill' | 'decode';

interface PhaseShared {
  spec: ManifestPhase;
  step: GPUBuffer;
  slots: GPUBuffer[];
  scratch: Map<string, GPUBuffer>;
  io: { ids: GPUBuffer; logits: GPUBuffer; token: GPUBuffer };
}

/** Words the sampler writes to the token buffer: the id, then its status (src/ops/sampling.ts). */
export const TOKEN_BYTES = 8;

/** Why generate() ended: it yielded maxTokens, yielded a stop token, or filled the KV cache. */
export type StopReason = 'max-tokens' | 'stop-token' | 'capacity';

/** Where findFirstNonFinite() first saw a NaN or an Inf. */
export interface NonFiniteSite {
  /** The step being replayed: 'prefill of positions 0..4' or 'decode at position 7'. */
  step: string;
  phase: PhaseName;
  /** Index of the dispatch in its phase, and its label (the graph node it implements). */
  dispatch: number;
  label: string;
  kernel: string;
  /** The kernel's binding that holds the value, and the bundle buffer bound to it. */
  binding: string;
  buffer: string;
  /** The model layer, from the dispatch label (`l<N>.…`) or its weights; null outside layers. */
  layer: number | null;
  /** First non-finite f32 element of the buffer, and its value. */
  index: number;
  value: number;
}

/** Layer of a dispatch: labels of layer nodes start with `l<N>.`; else a layer weight it binds. */
function layerOf(d: ManifestPhase['dispatches'][number]): number | null {
  const m = /^l(\d+)\./.exec(d.label);
  if (m) return Number(m[1]);
  for (const ref of Object.values(d.bind)) {
    const w = /^param:.*\blayers\.(\d+)\./.exec(ref);
    if (w) return Number(w[1]);
  }
  return null;
}

/**
 * Element type of storage binding `index`, read from the kernel's WGSL declaration (kernels
 * declare binding i for bindings[i], under their own variable names).
 */
function storageElem(code: string, index: number): string | null {
  const m = new RegExp(
    `@binding\\(${index}\\)\\s*var<storage,\\s*\\w+>\\s+\\w+\\s*:\\s*array<(.+?)>\\s*;`,
  ).exec(code);
  return m ? m[1] : null;
}

/** "a..b" or "a" for one position. */
function span(a: number, n: number): string {
  return n === 1 ? `position ${a}` : `positions ${a}..${a + n - 1}`;
}

export interface GenerateOptions {
  maxTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Generation stops after emitting one of these. */
  stopTokens?: number[];
}

/**
 * Timestamp queries around a step's compute pass (bench/gpu-timer.ts PassTimer;
 * runtime/dispatch-profile.ts DispatchTimer). With `perDispatch`, every dispatch runs in a pass
 * of its own and `passDescriptor(i)` times dispatch i: a profile of where the step's GPU time
 * goes, at the cost of more passes.
 */
export interface PassProfiler {
  readonly perDispatch?: boolean;
  passDescriptor(dispatch?: number): GPUComputePassDescriptor;
  resolve(enc: GPUCommandEncoder): void;
  read(): Promise<number | null>;
}

/**
 * The first of the rows whose logits a step needs (the span's last row when none is), checked to
 * lie with all the others in the recomputed span: forwardOnDevice's `rows` then skips the LM head
 * before it.
 */
export function firstLogitRow(
  rows: readonly number[],
  span: { from: number; to: number },
  what: string,
): number {
  if (rows.some((r) => !(r >= span.from && r < span.to)))
    throw new Error(
      `${what}: logit rows ${rows.join(', ')} are not all in the recomputed span ${span.from}..${span.to - 1}`,
    );
  return rows.length ? Math.min(...rows) : span.to - 1;
}

export class GpuModel {
  private constructor(
    readonly gpu: GpuContext,
    readonly manifest: BundleManifest,
    private readonly params: Map<string, GPUBuffer>,
    private readonly kernels: Map<string, Kernel>,
    private readonly phases: Record<PhaseName, PhaseShared>,
  ) {}

  get vocab(): number {
    return this.manifest.model.vocab;
  }

  /** The WGSL of one of the bundle's kernels (by its manifest name), or undefined. */
  kernelCode(name: string): string | undefined {
    return this.kernels.get(name)?.code;
  }

  /** Dispatches recorded per decode step (one token). */
  get dispatchesPerToken(): number {
    return this.manifest.phases.decode.dispatches.length;
  }

  /**
   * Upload weights, compile pipelines and allocate the phases' buffers. Refuses, naming the
   * buffer or dispatch and the device limit, a bundle whose buffers or grids the device cannot
   * hold, and turns any WebGPU error raised meanwhile into a DeviceError naming what was loading.
   */
  static async load(gpu: GpuContext, src: BundleSource, onProgress?: Progress): Promise<GpuModel> {
    const m = src.manifest;
    // Before anything is allocated: WebGPU would report an excess only as an error on the side.
    checkBundleFits(gpu.caps, m);
    const { device } = gpu;
    watchDevice(device);
    const scoped: { what: string; error: ReturnType<typeof withErrorScopes> }[] = [];
    const guard = (what: string, body: () => void) =>
      scoped.push({ what, error: withErrorScopes(device, body) });
    const params = new Map<string, GPUBuffer>();
    // A load that fails midway frees what it allocated: a page may retry on the same device.
    const release = () => params.forEach((b) => b.destroy());
    const kernels = new Map<string, Kernel>();
    try {
      if (src.streamTensors) await streamWeights(device, m, src, params, guard);
      else {
        let done = 0;
        for (const t of m.tensors) {
          const data = await src.tensor(t.name, t.shape);
          const bytes = dtypeBytes(t.dtype, numel(t.shape));
          // An f16 tensor of odd length is stored without its last half word; buffers hold words.
          if (Math.ceil(data.byteLength / 4) * 4 !== bytes)
            throw new Error(
              `weight '${t.name}': ${data.byteLength} bytes, ${t.dtype} [${t.shape}] is ${bytes}`,
            );
          guard(`upload of weight '${t.name}'`, () => {
            const buf = createStorage(device, bytes, t.name);
            const words = wordAligner(t.name, (_, offset, piece) =>
              upload(device, buf, piece, offset),
            );
            words.push(data);
            words.end();
            params.set(t.name, buf);
          });
          onProgress?.('upload weights', ++done, m.tensors.length);
        }
      }
      for (const k of m.kernels) {
        const code = await src.shader(k.file);
        checkKernelFeatures(k.name, code, gpu.features);
        const kernel: Kernel = {
          name: k.name,
          code,
          bindings: k.bindings,
          workgroupSize: k.workgroupSize,
        };
        await checkKernel(device, kernel);
        guard(`pipeline of kernel ${k.name}`, () => pipelineFor(device, kernel));
        kernels.set(k.name, kernel);
        onProgress?.('create pipelines', kernels.size, m.kernels.length);
      }
    } catch (e) {
      release();
      await src.close?.();
      throw e;
    }
    await src.close?.();
    const phase = (name: PhaseName): PhaseShared => {
      const spec = m.phases[name];
      let shared: PhaseShared | undefined;
      guard(`allocation of the ${name} buffers`, () => {
        shared = {
          spec,
          step: createStepBuffer(device),
          slots: spec.slots.map((b, i) => createStorage(device, b, `${name}.slot${i}`)),
          scratch: new Map(
            Object.entries(spec.scratch).map(([k, b]) => [
              k,
              createStorage(device, b, `${name}.${k}`),
            ]),
          ),
          io: {
            ids: createStorage(device, spec.ioBytes.ids, `${name}.ids`),
            logits: createStorage(device, spec.ioBytes.logits, `${name}.logits`),
            // At least the id and the status word, whatever an older manifest says.
            token: createStorage(
              device,
              Math.max(spec.ioBytes.token, TOKEN_BYTES),
              `${name}.token`,
            ),
          },
        };
      });
      return shared!;
    };
    const phases = { prefill: phase('prefill'), decode: phase('decode') };
    const model = new GpuModel(gpu, m, params, kernels, phases);
    try {
      for (const { what, error } of scoped) {
        const e = await error;
        if (e) throw new DeviceError(`loading the model (${what})`, e.kind, e.message);
      }
      model.checkDevice('loading the model');
    } catch (e) {
      model.destroy();
      throw e;
    }
    return model;
  }

  /**
   * Throw if the device was lost or raised an error outside the runtime's error scopes
   * (recorded by watchDevice): every later result would be wrong or missing.
   */
  checkDevice(step: string): void {
    const w = watchDevice(this.gpu.device);
    if (w.lost) throw new DeviceLostError(step, w.lost.reason, w.lost.message);
    if (w.firstError) {
      // Reported once: the error belongs to whatever ran before, not to every later step.
      const e = w.firstError;
      w.firstError = null;
      throw new DeviceError(
        `${step} (raised before it, outside the runtime's error scopes)`,
        e.kind,
        e.message,
      );
    }
  }

  /**
   * Await a readback, turning its failure on a lost device into a DeviceLostError: mapAsync
   * rejects with a bare AbortError, and device.lost resolves a moment later.
   */
  async readback<T>(step: string, p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      const { device } = this.gpu;
      const lost = await Promise.race([
        device.lost.then((i) => ({ reason: String(i.reason), message: i.message })),
        new Promise<null>((r) => setTimeout(() => r(null), 2000)),
      ]);
      if (lost) throw new DeviceLostError(step, lost.reason, lost.message);
      throw e;
    }
  }

  /**
   * Replay `prompt` (then each of `generated` as one decode step) on a fresh sequence one
   * dispatch at a time, reading back after each dispatch the f32 buffers it writes (activation
   * slots, logits, state such as KV caches; not its private scratch), and return the first
   * dispatch whose output holds a NaN or an Inf, or null when every value stays finite.
   * Debugging aid: slow (a submission and readbacks per dispatch), and it overwrites the
   * phases' shared buffers, so no other sequence of this model may be mid-step.
   */
  async findFirstNonFinite(
    prompt: ArrayLike<number>,
    generated: ArrayLike<number> = [],
  ): Promise<NonFiniteSite | null> {
    if (prompt.length === 0) throw new Error('findFirstNonFinite() needs a non-empty prompt');
    const { device } = this.gpu;
    // Stale values of the run being diagnosed would otherwise be blamed on the first writer.
    const enc = device.createCommandEncoder();
    for (const ph of Object.values(this.phases))
      for (const b of [...ph.slots, ...ph.scratch.values(), ph.io.logits]) enc.clearBuffer(b);
    device.queue.submit([enc.finish()]);
    const seq = this.newSequence();
    try {
      const maxT = this.phases.prefill.spec.maxT;
      const steps: Uint32Array[] = [];
      for (let s = 0; s < prompt.length; s += maxT)
        steps.push(Uint32Array.from(Array.prototype.slice.call(prompt, s, s + maxT) as number[]));
      for (let i = 0; i < generated.length; i++) steps.push(Uint32Array.of(generated[i]));
      for (const ids of steps) {
        const site = await seq.runChecked(ids.length === 1 ? 'decode' : 'prefill', ids);
        if (site) return site;
      }
      return null;
    } finally {
      seq.destroy();
    }
  }

  newSequence(): Sequence {
    const batch = this.manifest.compile.batch ?? 1;
    if (batch > 1)
      throw new Error(
        `this bundle decodes ${batch} sequences a step (compiled with --batch ${batch}): run it through BatchSequence (runtime/batch.ts)`,
      );
    return new Sequence(this);
  }

  /** @internal Buffers and bind groups of one phase for a sequence's state. */
  bindPhase(name: PhaseName, state: Map<string, GPUBuffer>): BoundPhase {
    const ph = this.phases[name];
    const { device } = this.gpu;
    const resolve = (ref: string): GPUBuffer => {
      const [kind, rest] = splitRef(ref);
      const buf =
        kind === 'param'
          ? this.params.get(rest)
          : kind === 'state'
            ? state.get(rest)
            : kind === 'slot'
              ? ph.slots[Number(rest)]
              : kind === 'scratch'
                ? ph.scratch.get(rest)
                : ph.io[kind as keyof PhaseShared['io']];
      if (!buf) throw new Error(`bundle ${name} phase refers to unknown buffer '${ref}'`);
      return buf;
    };
    const calls = ph.spec.dispatches.map((d) => {
      const kernel = this.kernels.get(d.kernel);
      if (!kernel) throw new Error(`bundle ${name} phase uses unknown kernel '${d.kernel}'`);
      const pipeline = pipelineFor(device, kernel);
      const bindGroup = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        label: d.label,
        entries: kernel.bindings.map((b, i) => ({
          binding: i,
          resource: { buffer: b.name === 'step' ? ph.step : resolve(d.bind[b.name]) },
        })),
      });
      // What findFirstNonFinite() reads back: the f32 buffers this dispatch writes, except
      // scratch (kernel-private partials may legitimately hold -Inf, e.g. running maxima).
      const writes = kernel.bindings
        .map((b, i) => ({ binding: b.name, ref: d.bind[b.name], access: b.access, i }))
        .filter(
          ({ binding, ref, access, i }) =>
            binding !== 'step' &&
            access === 'read_write' &&
            !ref.startsWith('scratch:') &&
            ref !== 'token' &&
            ref !== 'ids' &&
            /\bf32\b/.test(storageElem(kernel.code, i) ?? ''),
        )
        .map(({ binding, ref }) => ({ binding, ref, buffer: resolve(ref) }));
      return {
        pipeline,
        bindGroup,
        grid: d.grid,
        label: d.label,
        kernel: d.kernel,
        layer: layerOf(d),
        writes,
      };
    });
    return { shared: ph, calls };
  }

  destroy(): void {
    for (const b of this.params.values()) b.destroy();
    for (const ph of Object.values(this.phases)) {
      for (const b of [ph.step, ...ph.slots, ...ph.scratch.values(), ...Object.values(ph.io)])
        b.destroy();
    }
  }
}

/** @internal A phase's dispatches bound to one set of state buffers (runtime/batch.ts binds its own). */
export interface BoundPhase {
  shared: PhaseShared;
  calls: {
    pipeline: GPUComputePipeline;
    bindGroup: GPUBindGroup;
    grid: ManifestPhase['dispatches'][number]['grid'];
    label: string;
    kernel: string;
    layer: number | null;
    writes: { binding: string; ref: string; buffer: GPUBuffer }[];
  }[];
}

/** A submitted step: what it was (for errors), the position it sampled at, its error scopes. */
interface StepRun {
  b: BoundPhase;
  step: string;
  position: number;
  errors: ReturnType<typeof withErrorScopes>;
}

/** @internal Record one bound dispatch with its grid for step shape p. */
export function record(
  pass: GPUComputePassEncoder,
  c: BoundPhase['calls'][number],
  p: { T: number; pos: number; L: number; keys?: number },
): void {
  const grid = c.grid.map((d) => resolveGridDim(d, p)) as [number, number, number];
  if (grid.some((g) => g === 0)) return;
  pass.setPipeline(c.pipeline);
  pass.setBindGroup(0, c.bindGroup);
  pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
}

/** The sampler's words (id, status) of step r: the id, or a NonFiniteError naming the step. */
function sampledToken(words: Uint32Array, r: StepRun): number {
  if (words[1] === NONFINITE_LOGITS) throw new NonFiniteError(r.step, r.position);
  return words[0];
}

function splitRef(ref: string): [string, string] {
  const i = ref.indexOf(':');
  return i < 0 ? [ref, ''] : [ref.slice(0, i), ref.slice(i + 1)];
}

/** One sequence: its own KV caches and position. */
export class Sequence {
  pos = 0;
  /**
   * Why the last generate() that ran to its end stopped; null while one runs, or when its
   * consumer left the loop early (break) or it threw.
   */
  lastStop: StopReason | null = null;
  private readonly state = new Map<string, GPUBuffer>();
  private readonly bound: Record<PhaseName, BoundPhase>;
  private draws = 0;
  /** Cache rows [0, filled) have been written since the last reset(). */
  private filled = 0;
  /** What helpers bound to this sequence allocated (onDestroy), freed with it. */
  private readonly releases: Array<() => void> = [];

  constructor(readonly model: GpuModel) {
    const { device } = model.gpu;
    for (const s of model.manifest.state) {
      const bytes = dtypeBytes(s.dtype, numel(s.shape));
      this.state.set(s.name, createStorage(device, bytes, s.name));
    }
    this.bound = {
      prefill: model.bindPhase('prefill', this.state),
      decode: model.bindPhase('decode', this.state),
    };
  }

  get capacity(): number {
    return this.model.manifest.compile.capacity;
  }

  /** Forget the sequence's tokens (caches are overwritten as it refills). */
  reset(): void {
    this.pos = 0;
    this.draws = 0;
    this.filled = 0;
  }

  /**
   * Move back to position `pos` (at most the current one): the next step writes its K/V from
   * there, and the cache rows after it keep their values, visible to a bidirectional forward
   * given `keys` (a diffusion sampler recomputing part of its canvas against the rest).
   */
  rewind(pos: number): void {
    if (!Number.isInteger(pos) || pos < 0 || pos > this.pos)
      throw new Error(
        `rewind(${pos}): the sequence is at position ${this.pos} (allowed 0..${this.pos})`,
      );
    this.pos = pos;
  }

  /**
   * Jump a new sequence to position `pos` without computing the tokens before it, to time steps
   * at a long context without filling it first (`explore --measure --fill zeros`; an H2O cache
   * fills one token at a time: its 32k prefill outlasted a 10-minute H100 call). WebGPU zeroes
   * new buffers, so the rows before `pos` hold zeros and what the sequence generates from there
   * means nothing; what a step costs does not change, since no kernel's work depends on the
   * values in its caches and states.
   */
  skipForTiming(pos: number): void {
    if (this.pos !== 0 || this.filled !== 0 || this.draws !== 0)
      throw new Error(
        `skipForTiming(${pos}) needs a new sequence (this one is at position ${this.pos})`,
      );
    if (!Number.isInteger(pos) || pos < 0)
      throw new Error(`skipForTiming(${pos}): a position is an integer of at least 0`);
    this.checkFits(pos, 'skipForTiming()');
    this.pos = pos;
    this.filled = pos;
  }

  /** Refuse `n` more tokens when they do not fit in the KV cache, with both numbers. */
  private checkFits(n: number, what: string): void {
    if (this.pos + n <= this.capacity) return;
    const need = this.pos + n;
    const held = this.pos > 0 ? ` after the sequence's ${this.pos} tokens` : '';
    const maxContext = this.model.manifest.model.maxContext;
    const fix =
      need <= maxContext
        ? `compile with --capacity ${need} or more`
        : `the model's max_context ${maxContext} cannot hold ${need} tokens either`;
    throw new CapacityError(
      need,
      this.capacity,
      `${what} of ${n} tokens${held} exceeds the KV cache capacity ${this.capacity} (${fix})`,
    );
  }

  /** A step of T tokens checked against maxT and the KV capacity, and its name for errors. */
  private begin(phase: PhaseName, T: number, name?: string): { b: BoundPhase; step: string } {
    const b = this.bound[phase];
    if (T > b.shared.spec.maxT)
      throw new Error(`${phase} step of ${T} tokens exceeds its maxT ${b.shared.spec.maxT}`);
    this.checkFits(T, 'a step');
    const step =
      name ??
      (phase === 'prefill' ? `prefill of ${span(this.pos, T)}` : `decode at position ${this.pos}`);
    return { b, step };
  }

  /**
   * Record and submit one step. `ids` null means the one input token is already in the
   * phase's ids buffer (written there by the previous decode step's sampler). `after` adds
   * commands (copies of the sampled token) to the same submission. The step's WebGPU errors
   * are caught in error scopes; settle() awaits them.
   */
  private run(
    phase: PhaseName,
    ids: Uint32Array | null,
    L: number,
    sampling: SamplingParams,
    name?: string,
    timer?: PassProfiler,
    after?: (enc: GPUCommandEncoder) => void,
    keys = 0,
  ): StepRun {
    const T = ids ? ids.length : 1;
    const { b, step } = this.begin(phase, T, name);
    this.model.checkDevice(step);
    const { device } = this.model.gpu;
    const p = { T, pos: this.pos, L, keys };
    const errors = withErrorScopes(device, () => {
      if (ids) upload(device, b.shared.io.ids, ids);
      writeStep(device, b.shared.step, p, sampling);
      const enc = device.createCommandEncoder();
      if (timer?.perDispatch) {
        for (const [i, c] of b.calls.entries()) {
          const pass = enc.beginComputePass(timer.passDescriptor(i));
          record(pass, c, p);
          pass.end();
        }
      } else {
        const pass = enc.beginComputePass(timer?.passDescriptor());
        for (const c of b.calls) record(pass, c, p);
        pass.end();
      }
      timer?.resolve(enc);
      after?.(enc);
      device.queue.submit([enc.finish()]);
    });
    const run: StepRun = { b, step, position: this.pos + T - 1, errors };
    this.pos += T;
    this.filled = Math.max(this.filled, this.pos);
    return run;
  }

  /** Throw the WebGPU error of a submitted step (or an uncaptured one, or the device's loss). */
  private async settle(r: StepRun): Promise<void> {
    const e = await r.errors;
    if (e) throw new DeviceError(r.step, e.kind, e.message);
    this.model.checkDevice(r.step);
  }

  private async readLogits(r: StepRun, L: number): Promise<Float32Array> {
    const { device } = this.model.gpu;
    const bytes = L * this.model.vocab * 4;
    return new Float32Array(
      await this.model.readback(r.step, readBuffer(device, r.b.shared.io.logits, bytes)),
    );
  }

  /** The sampled token of a settled step; a NonFiniteError when its logits were not finite. */
  private async readToken(r: StepRun): Promise<number> {
    const { device } = this.model.gpu;
    const words = new Uint32Array(
      await this.model.readback(r.step, readBuffer(device, r.b.shared.io.token, TOKEN_BYTES)),
    );
    await this.settle(r);
    return sampledToken(words, r);
  }

  /** Split `ids` into prefill chunks of at most maxT (a chunk of one goes through decode). */
  private chunks(ids: ArrayLike<number>): { phase: PhaseName; ids: Uint32Array }[] {
    return promptChunks(ids, this.bound.prefill.shared.spec.maxT).map((c) => ({
      phase: c.ids.length === 1 ? 'decode' : 'prefill',
      ids: c.ids,
    }));
  }

  /**
   * Logits for every given token ([ids.length, vocab]) and the token sampled from the last row,
   * advancing the sequence. Every row is checked on the host: a NaN or an Inf throws a
   * NonFiniteError naming the step and the position of the first bad row. `keys`: bidirectional
   * attention also sees the cache rows up to it (written since reset(); see rewind()). `after`
   * records commands over the last chunk's logits buffer into that chunk's submission (a kernel
   * that derives a state from the logits on the device, runtime/entropy-diffusion.ts).
   */
  async forward(
    ids: ArrayLike<number>,
    sampling: SamplingParams = GREEDY,
    opts: { keys?: number; after?: (enc: GPUCommandEncoder, logits: GPUBuffer) => void } = {},
  ): Promise<{ logits: Float32Array; token: number }> {
    if (ids.length === 0) throw new Error('forward() needs at least one token');
    this.checkFits(ids.length, 'forward() input');
    const keys = opts.keys ?? 0;
    if (!Number.isInteger(keys) || keys < 0 || keys > Math.max(this.filled, this.pos + ids.length))
      throw new Error(
        `forward(keys ${keys}): only cache rows 0..${this.filled - 1} have been written since reset()`,
      );
    const vocab = this.model.vocab;
    const out = new Float32Array(ids.length * vocab);
    let r: StepRun | undefined;
    let s = 0;
    const chunks = this.chunks(ids);
    for (const c of chunks) {
      const after = opts.after;
      const logitsBuf = this.bound[c.phase].shared.io.logits;
      r = this.run(
        c.phase,
        c.ids,
        c.ids.length,
        { ...sampling, draw: this.draws },
        undefined,
        undefined,
        after && c === chunks[chunks.length - 1] ? (enc) => after(enc, logitsBuf) : undefined,
        keys,
      );
      const logits = await this.readLogits(r, c.ids.length);
      await this.settle(r);
      const bad = logits.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) {
        const row = Math.floor(bad / vocab);
        throw new NonFiniteError(
          r.step,
          r.position - c.ids.length + 1 + row,
          `logit ${bad % vocab} is ${logits[bad]}`,
        );
      }
      out.set(logits, s * vocab);
      s += c.ids.length;
    }
    this.draws++;
    return { logits: out, token: await this.readToken(r!) };
  }

  /**
   * Run `ids` (one prefill chunk at most) as one step without reading its logits back: `then`
   * records commands over the phase's logits buffer ([rows, vocab] f32: the logits of the last
   * `rows` of ids, all of them by default) into the same submission (a GPU-side reduction such
   * as the diffusion pick). The LM head runs over those rows only. Resolves once the step's
   * errors are settled; `keys` as in forward().
   */
  async forwardOnDevice(
    ids: ArrayLike<number>,
    then: (enc: GPUCommandEncoder, logits: GPUBuffer) => void,
    opts: { keys?: number; rows?: number } = {},
  ): Promise<void> {
    const chunks = ids.length === 0 ? [] : this.chunks(ids);
    if (chunks.length !== 1)
      throw new Error(
        `forwardOnDevice() runs one step of 1..${this.bound.prefill.shared.spec.maxT} tokens, got ${ids.length}`,
      );
    const keys = opts.keys ?? 0;
    if (!Number.isInteger(keys) || keys < 0 || keys > Math.max(this.filled, this.pos + ids.length))
      throw new Error(
        `forwardOnDevice(keys ${keys}): only cache rows 0..${this.filled - 1} have been written since reset()`,
      );
    const c = chunks[0];
    const rows = opts.rows ?? c.ids.length;
    if (!Number.isInteger(rows) || rows < 1 || rows > c.ids.length)
      throw new Error(
        `forwardOnDevice(rows ${rows}): the logit rows must be 1..${c.ids.length}, the step's tokens`,
      );
    const logits = this.bound[c.phase].shared.io.logits;
    const r = this.run(
      c.phase,
      c.ids,
      rows,
      { ...GREEDY, draw: this.draws },
      undefined,
      undefined,
      (enc) => then(enc, logits),
      keys,
    );
    this.draws++;
    await this.settle(r);
  }

  /** Feed tokens and sample the next one (prompt chunks run through prefill, single tokens through decode). */
  async next(
    ids: ArrayLike<number>,
    sampling: SamplingParams,
    wantLogits = false,
  ): Promise<{ token: number; logits?: Float32Array }> {
    if (ids.length === 0) throw new Error('next() needs at least one token');
    this.checkFits(ids.length, 'next() input');
    const runs = this.chunks(ids).map((c) =>
      this.run(c.phase, c.ids, 1, { ...sampling, draw: this.draws }),
    );
    this.draws++;
    for (const r of runs.slice(0, -1)) await this.settle(r);
    const last = runs[runs.length - 1];
    const token = await this.readToken(last);
    return { token, logits: wantLogits ? await this.readLogits(last, 1) : undefined };
  }

  /** Median GPU milliseconds of one decode step over `steps` greedy steps (timestamp queries). */
  async profileDecode(token: number, steps: number, timer: PassProfiler): Promise<number | null> {
    const times: number[] = [];
    for (let i = 0; i < steps && this.pos < this.capacity; i++) {
      const r = this.run('decode', Uint32Array.of(token), 1, GREEDY, undefined, timer);
      token = await this.readToken(r);
      await this.timed(timer, times);
    }
    return medianOrNull(times);
  }

  /**
   * Median GPU milliseconds of prefilling `ids` (one prefill chunk) from position 0, over `runs`
   * runs; the sequence is reset before each, so every run sees the same empty cache.
   */
  async profilePrefill(
    ids: ArrayLike<number>,
    runs: number,
    timer: PassProfiler,
  ): Promise<number | null> {
    const chunks = this.chunks(ids);
    if (chunks.length !== 1 || chunks[0].phase !== 'prefill')
      throw new Error(
        `profilePrefill() times one prefill chunk of 2..${this.bound.prefill.shared.spec.maxT} tokens, got ${ids.length}`,
      );
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      this.reset();
      const r = this.run('prefill', chunks[0].ids, 1, GREEDY, undefined, timer);
      await this.readToken(r);
      await this.timed(timer, times);
    }
    return medianOrNull(times);
  }

  private async timed(timer: PassProfiler, times: number[]): Promise<void> {
    const ms = await timer.read();
    if (ms !== null) times.push(ms);
  }

  /**
   * Stream generated token ids. Decode runs one step ahead of the host: the sampler writes
   * each token into the decode ids buffer on the GPU, so step k+1 is submitted before token k
   * is read back and the GPU never waits for the host. Consequence, by design: when the
   * generator finishes, every yielded token has been consumed by the sequence (the step after
   * the last one ran and its sample is discarded), so a follow-up call continues after it.
   *
   * Limits: a prompt that does not fit in the KV cache throws a CapacityError before anything
   * runs. When prompt + maxTokens does not fit, generation runs until the cache is full and
   * stops there with `lastStop = 'capacity'`, so the caller can say why it got fewer tokens
   * than it asked for: capacity − pos − prompt.length + 1 tokens, the last of which is not fed
   * (there is no room for it; the exception to the rule above). Non-finite logits throw a
   * NonFiniteError naming the step (prefill, or decode step k) and the position; WebGPU errors
   * a DeviceError, a lost device a DeviceLostError.
   */
  async *generate(prompt: ArrayLike<number>, opts: GenerateOptions): AsyncGenerator<number> {
    this.lastStop = null;
    if (prompt.length === 0) throw new Error('generate() needs a non-empty prompt');
    this.checkFits(prompt.length, 'prompt');
    const sampling: SamplingParams = {
      seed: opts.seed ?? 0,
      draw: 0,
      temperature: opts.temperature ?? 0,
      topK: opts.topK ?? 0,
      topP: opts.topP ?? 1,
    };
    if (opts.maxTokens < 1) {
      this.lastStop = 'max-tokens';
      return;
    }
    const { device } = this.model.gpu;
    const decodeIds = this.bound.decode.shared.io.ids;
    const staging = [0, 1].map(() =>
      device.createBuffer({
        size: TOKEN_BYTES,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      }),
    );
    // Hand the sampled token to the next decode step, and it with its status word to a staging
    // buffer for the host.
    const handOff = (from: BoundPhase, slot: number) => (enc: GPUCommandEncoder) => {
      enc.copyBufferToBuffer(from.shared.io.token, 0, decodeIds, 0, 4);
      enc.copyBufferToBuffer(from.shared.io.token, 0, staging[slot], 0, TOKEN_BYTES);
    };
    // producers[i]: the steps that sampled token i (every prefill chunk for token 0).
    const producers: StepRun[][] = [[]];
    try {
      const chunks = this.chunks(prompt);
      for (const [j, c] of chunks.entries()) {
        const last = j === chunks.length - 1;
        producers[0].push(
          this.run(
            c.phase,
            c.ids,
            1,
            { ...sampling, draw: this.draws },
            `prefill of ${span(this.pos, c.ids.length)}`,
            undefined,
            last ? handOff(this.bound[c.phase], 0) : undefined,
          ),
        );
      }
      this.draws++;
      for (let i = 0; i < opts.maxTokens; i++) {
        const slot = i % 2;
        // Feed token i (already in the decode ids buffer) while the host reads it back.
        if (this.pos < this.capacity) {
          producers[i + 1] = [
            this.run(
              'decode',
              null,
              1,
              { ...sampling, draw: this.draws },
              `decode step ${i + 1}`,
              undefined,
              handOff(this.bound.decode, 1 - slot),
            ),
          ];
          this.draws++;
        }
        const mine = producers[i];
        const at = mine[mine.length - 1];
        await this.model.readback(at.step, staging[slot].mapAsync(GPUMapMode.READ));
        const words = new Uint32Array(staging[slot].getMappedRange().slice(0));
        staging[slot].unmap();
        for (const r of mine) await this.settle(r);
        const token = sampledToken(words, at);
        yield token;
        if (opts.stopTokens?.includes(token)) {
          this.lastStop = 'stop-token';
          return;
        }
        if (i === opts.maxTokens - 1) {
          this.lastStop = 'max-tokens';
          return;
        }
        // The cache filled up before the next token could be sampled.
        if (!producers[i + 1]) {
          this.lastStop = 'capacity';
          return;
        }
      }
    } finally {
      // A lost device may refuse this too; the error that ended the loop is the one to report.
      await device.queue.onSubmittedWorkDone().catch(() => undefined);
      for (const b of staging) b.destroy();
    }
  }

  /**
   * Run one step dispatch by dispatch, reading back after each what it wrote; the first NaN or
   * Inf found, or null. Used by GpuModel.findFirstNonFinite().
   * @internal
   */
  async runChecked(phase: PhaseName, ids: Uint32Array): Promise<NonFiniteSite | null> {
    const T = ids.length;
    const { b, step } = this.begin(phase, T);
    const { device } = this.model.gpu;
    const p = { T, pos: this.pos, L: 1 };
    upload(device, b.shared.io.ids, ids);
    writeStep(device, b.shared.step, p, GREEDY);
    this.pos += T;
    for (const [i, c] of b.calls.entries()) {
      const errors = withErrorScopes(device, () => {
        const enc = device.createCommandEncoder();
        const pass = enc.beginComputePass();
        record(pass, c, p);
        pass.end();
        device.queue.submit([enc.finish()]);
      });
      const dispatchStep = `${step}, dispatch ${i} '${c.label}'`;
      for (const w of c.writes) {
        const data = new Float32Array(
          await this.model.readback(dispatchStep, readBuffer(device, w.buffer, w.buffer.size)),
        );
        const bad = data.findIndex((x) => !Number.isFinite(x));
        if (bad >= 0) {
          return {
            step,
            phase,
            dispatch: i,
            label: c.label,
            kernel: c.kernel,
            binding: w.binding,
            buffer: w.ref,
            layer: c.layer,
            index: bad,
            value: data[bad],
          };
        }
      }
      await this.settle({ b, step: dispatchStep, position: this.pos - 1, errors });
    }
    return null;
  }

  /**
   * The bytes of one of the sequence's state buffers (KV caches, recurrent state, or the MoE
   * expert-load counters `moe.load.<layer>`: u32 tokens routed to each expert since the sequence
   * was created; reset() does not clear them).
   */
  async readState(name: string): Promise<ArrayBuffer> {
    const buf = this.state.get(name);
    const spec = this.model.manifest.state.find((s) => s.name === name);
    if (!buf || !spec) throw new Error(`the sequence has no state buffer '${name}'`);
    const bytes = dtypeBytes(spec.dtype, numel(spec.shape));
    return readBuffer(this.model.gpu.device, buf, bytes);
  }

  /**
   * Overwrite the start of one of the sequence's state buffers (a host-written input such as
   * an entropy_bound model's self-conditioning probabilities, runtime/entropy-diffusion.ts).
   */
  writeState(name: string, data: Float32Array | Uint32Array): void {
    const buf = this.stateBuffer(name);
    if (data.byteLength > buf.size)
      throw new Error(`writeState('${name}'): ${data.byteLength} bytes exceed its ${buf.size}`);
    upload(this.model.gpu.device, buf, data);
  }

  /** Zero the first `bytes` (default: all) of one of the sequence's state buffers, on the device. */
  clearState(name: string, bytes?: number): void {
    const buf = this.stateBuffer(name);
    const n = bytes === undefined ? buf.size : Math.ceil(bytes / 4) * 4;
    if (n > buf.size)
      throw new Error(`clearState('${name}'): ${bytes} bytes exceed its ${buf.size}`);
    const enc = this.model.gpu.device.createCommandEncoder();
    enc.clearBuffer(buf, 0, n);
    this.model.gpu.device.queue.submit([enc.finish()]);
  }

  /**
   * @internal One of the sequence's state buffers, for a kernel of the runtime's own that writes
   * it on the device (runtime/entropy-diffusion.ts).
   */
  stateBuffer(name: string): GPUBuffer {
    const buf = this.state.get(name);
    if (!buf) throw new Error(`the sequence has no state buffer '${name}'`);
    return buf;
  }

  /**
   * The byte size of each of the sequence's GPU state buffers, as allocated (they never grow:
   * a streaming layer's ring cache stays its sink + window rows however long the sequence runs).
   */
  stateSizes(): Map<string, number> {
    return new Map([...this.state].map(([name, buf]) => [name, buf.size]));
  }

  /**
   * Frees `release`'s resources with the sequence's own: for a helper that lives as long as the
   * sequence it drives (runtime/entropy-diffusion.ts's kernels and buffers).
   */
  onDestroy(release: () => void): void {
    this.releases.push(release);
  }

  destroy(): void {
    for (const b of this.state.values()) b.destroy();
    for (const release of this.releases.splice(0)) release();
  }
}

function medianOrNull(xs: number[]): number | null {
  return xs.length ? median(xs) : null;
}

/** `ids` in chunks of at most maxT, each with its first position (a prefill step each). */
export function promptChunks(
  ids: ArrayLike<number>,
  maxT: number,
): { at: number; ids: Uint32Array }[] {
  const out: { at: number; ids: Uint32Array }[] = [];
  for (let at = 0; at < ids.length; at += maxT)
    out.push({
      at,
      ids: Uint32Array.from(Array.prototype.slice.call(ids, at, at + maxT) as number[]),
    });
  return out;
}
