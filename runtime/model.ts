/**
 * Runs a compiled bundle on a WebGPU device. Browser-safe: bundle files come
 * through a BundleSource (the Node adapter reads them from disk; a browser
 * fetches them). Each step records all of a phase's dispatches into one
 * command buffer; the Step uniform carries T, position and sampling settings.
 */
import type { Kernel, SamplingParams } from '../codegen/kernel-ir.ts';
import { GREEDY, resolveGridDim } from '../codegen/kernel-ir.ts';
import type { BundleManifest, ManifestPhase } from './manifest.ts';
import {
  checkKernel,
  createStepBuffer,
  createStorage,
  pipelineFor,
  readBuffer,
  upload,
  writeStep,
  type GpuContext,
} from './gpu.ts';

export interface BundleSource {
  manifest: BundleManifest;
  shader(file: string): Promise<string>;
  /** The named tensor as f32; must throw an error naming the tensor if it is missing or mis-sized. */
  tensor(name: string, shape: number[]): Promise<Float32Array>;
  /** Release files; GpuModel.load calls it once everything is on the GPU. */
  close?(): Promise<void>;
}

export type Progress = (stage: string, done: number, total: number) => void;

type PhaseName = 'prefill' | 'decode';

interface PhaseShared {
  spec: ManifestPhase;
  step: GPUBuffer;
  slots: GPUBuffer[];
  scratch: Map<string, GPUBuffer>;
  io: { ids: GPUBuffer; logits: GPUBuffer; token: GPUBuffer };
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
 * Timestamp queries around a step's compute pass (bench/gpu-timer.ts implements it). With
 * `perDispatch`, every dispatch runs in a pass of its own and `passDescriptor(i)` times
 * dispatch i: a profile of where the step's GPU time goes, at the cost of more passes.
 */
export interface PassProfiler {
  readonly perDispatch?: boolean;
  passDescriptor(dispatch?: number): GPUComputePassDescriptor;
  resolve(enc: GPUCommandEncoder): void;
  read(): Promise<number | null>;
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

  /** Dispatches recorded per decode step (one token). */
  get dispatchesPerToken(): number {
    return this.manifest.phases.decode.dispatches.length;
  }

  static async load(gpu: GpuContext, src: BundleSource, onProgress?: Progress): Promise<GpuModel> {
    const m = src.manifest;
    checkDeviceFits(gpu, m);
    const { device } = gpu;
    const params = new Map<string, GPUBuffer>();
    let done = 0;
    for (const t of m.tensors) {
      const data = await src.tensor(t.name, t.shape);
      const buf = createStorage(device, data.byteLength, t.name);
      upload(device, buf, data);
      params.set(t.name, buf);
      onProgress?.('upload weights', ++done, m.tensors.length);
    }
    const kernels = new Map<string, Kernel>();
    done = 0;
    for (const k of m.kernels) {
      const kernel: Kernel = {
        name: k.name,
        code: await src.shader(k.file),
        bindings: k.bindings,
        workgroupSize: k.workgroupSize,
      };
      await checkKernel(device, kernel);
      pipelineFor(device, kernel);
      kernels.set(k.name, kernel);
      onProgress?.('create pipelines', ++done, m.kernels.length);
    }
    await src.close?.();
    const phase = (name: PhaseName): PhaseShared => {
      const spec = m.phases[name];
      return {
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
          token: createStorage(device, spec.ioBytes.token, `${name}.token`),
        },
      };
    };
    return new GpuModel(gpu, m, params, kernels, {
      prefill: phase('prefill'),
      decode: phase('decode'),
    });
  }

  newSequence(): Sequence {
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
      return { pipeline, bindGroup, grid: d.grid, label: d.label };
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

interface BoundPhase {
  shared: PhaseShared;
  calls: {
    pipeline: GPUComputePipeline;
    bindGroup: GPUBindGroup;
    grid: ManifestPhase['dispatches'][number]['grid'];
    label: string;
  }[];
}

function splitRef(ref: string): [string, string] {
  const i = ref.indexOf(':');
  return i < 0 ? [ref, ''] : [ref.slice(0, i), ref.slice(i + 1)];
}

/** Refuse a bundle whose kernels need more than this device offers, naming the limit. */
function checkDeviceFits(gpu: GpuContext, m: BundleManifest): void {
  const need = m.compile.caps;
  const have = gpu.caps;
  const checks: [string, number, number][] = [
    [
      'maxStorageBuffersPerShaderStage',
      need.maxStorageBuffersPerStage,
      have.maxStorageBuffersPerStage,
    ],
    [
      'maxComputeWorkgroupStorageSize',
      need.maxWorkgroupStorageBytes,
      have.maxWorkgroupStorageBytes,
    ],
    [
      'maxComputeInvocationsPerWorkgroup',
      need.maxInvocationsPerWorkgroup,
      have.maxInvocationsPerWorkgroup,
    ],
    ['maxStorageBufferBindingSize', need.maxStorageBindingBytes, have.maxStorageBindingBytes],
  ];
  for (const [name, want, got] of checks) {
    if (got < want) {
      throw new Error(
        `this bundle was compiled for ${name} = ${want}, but the device offers ${got}; recompile it for this device`,
      );
    }
  }
}

/** One sequence: its own KV caches and position. */
export class Sequence {
  pos = 0;
  private readonly state = new Map<string, GPUBuffer>();
  private readonly bound: Record<PhaseName, BoundPhase>;
  private draws = 0;

  constructor(readonly model: GpuModel) {
    const { device } = model.gpu;
    for (const s of model.manifest.state) {
      const bytes = s.shape.reduce((a, b) => a * b, 1) * 4;
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
  }

  /**
   * Record and submit one step. `ids` null means the one input token is already in the
   * phase's ids buffer (written there by the previous decode step's sampler). `after` adds
   * commands (copies of the sampled token) to the same submission.
   */
  private run(
    phase: PhaseName,
    ids: Uint32Array | null,
    L: number,
    sampling: SamplingParams,
    timer?: PassProfiler,
    after?: (enc: GPUCommandEncoder) => void,
  ): BoundPhase {
    const T = ids ? ids.length : 1;
    const b = this.bound[phase];
    if (T > b.shared.spec.maxT)
      throw new Error(`${phase} step of ${T} tokens exceeds its maxT ${b.shared.spec.maxT}`);
    if (this.pos + T > this.capacity) {
      throw new Error(
        `sequence would reach ${this.pos + T} tokens, over the KV cache capacity ${this.capacity}`,
      );
    }
    const { device } = this.model.gpu;
    if (ids) upload(device, b.shared.io.ids, ids);
    const p = { T, pos: this.pos, L };
    writeStep(device, b.shared.step, p, sampling);
    const enc = device.createCommandEncoder();
    const record = (pass: GPUComputePassEncoder, c: BoundPhase['calls'][number]) => {
      const grid = c.grid.map((d) => resolveGridDim(d, p)) as [number, number, number];
      if (grid.some((g) => g === 0)) return;
      pass.setPipeline(c.pipeline);
      pass.setBindGroup(0, c.bindGroup);
      pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    };
    if (timer?.perDispatch) {
      for (const [i, c] of b.calls.entries()) {
        const pass = enc.beginComputePass(timer.passDescriptor(i));
        record(pass, c);
        pass.end();
      }
    } else {
      const pass = enc.beginComputePass(timer?.passDescriptor());
      for (const c of b.calls) record(pass, c);
      pass.end();
    }
    timer?.resolve(enc);
    after?.(enc);
    device.queue.submit([enc.finish()]);
    this.pos += T;
    return b;
  }

  private async readLogits(b: BoundPhase, L: number): Promise<Float32Array> {
    return new Float32Array(
      await readBuffer(this.model.gpu.device, b.shared.io.logits, L * this.model.vocab * 4),
    );
  }

  private async readToken(b: BoundPhase): Promise<number> {
    return new Uint32Array(await readBuffer(this.model.gpu.device, b.shared.io.token, 4))[0];
  }

  /**
   * Logits for every given token ([ids.length, vocab]) and the token sampled from the last row,
   * advancing the sequence.
   */
  async forward(
    ids: ArrayLike<number>,
    sampling: SamplingParams = GREEDY,
  ): Promise<{ logits: Float32Array; token: number }> {
    if (ids.length === 0) throw new Error('forward() needs at least one token');
    const vocab = this.model.vocab;
    const out = new Float32Array(ids.length * vocab);
    const maxT = this.bound.prefill.shared.spec.maxT;
    let b: BoundPhase | undefined;
    for (let s = 0; s < ids.length; s += maxT) {
      const chunk = Uint32Array.from(Array.prototype.slice.call(ids, s, s + maxT) as number[]);
      const phase: PhaseName = chunk.length === 1 ? 'decode' : 'prefill';
      b = this.run(phase, chunk, chunk.length, { ...sampling, draw: this.draws });
      out.set(await this.readLogits(b, chunk.length), s * vocab);
    }
    this.draws++;
    return { logits: out, token: await this.readToken(b!) };
  }

  /** Feed tokens and sample the next one (prompt chunks run through prefill, single tokens through decode). */
  async next(
    ids: ArrayLike<number>,
    sampling: SamplingParams,
    wantLogits = false,
  ): Promise<{ token: number; logits?: Float32Array }> {
    if (ids.length === 0) throw new Error('next() needs at least one token');
    const maxT = this.bound.prefill.shared.spec.maxT;
    let b: BoundPhase | undefined;
    for (let s = 0; s < ids.length; s += maxT) {
      const chunk = Uint32Array.from(Array.prototype.slice.call(ids, s, s + maxT) as number[]);
      b = this.run(chunk.length === 1 ? 'decode' : 'prefill', chunk, 1, {
        ...sampling,
        draw: this.draws,
      });
    }
    this.draws++;
    const token = await this.readToken(b!);
    return { token, logits: wantLogits ? await this.readLogits(b!, 1) : undefined };
  }

  /** Median GPU milliseconds of one decode step over `steps` greedy steps (timestamp queries). */
  async profileDecode(token: number, steps: number, timer: PassProfiler): Promise<number | null> {
    const times: number[] = [];
    for (let i = 0; i < steps && this.pos < this.capacity; i++) {
      const b = this.run('decode', Uint32Array.of(token), 1, GREEDY, timer);
      token = await this.readToken(b);
      const ms = await timer.read();
      if (ms !== null) times.push(ms);
    }
    times.sort((a, b) => a - b);
    return times.length ? times[Math.floor(times.length / 2)] : null;
  }

  /**
   * Stream generated token ids. Decode runs one step ahead of the host: the sampler writes
   * each token into the decode ids buffer on the GPU, so step k+1 is submitted before token k
   * is read back and the GPU never waits for the host. Consequence, by design: when the
   * generator finishes, every yielded token has been consumed by the sequence (the step after
   * the last one ran and its sample is discarded), so a follow-up call continues after it.
   */
  async *generate(prompt: ArrayLike<number>, opts: GenerateOptions): AsyncGenerator<number> {
    if (prompt.length === 0) throw new Error('generate() needs a non-empty prompt');
    const sampling: SamplingParams = {
      seed: opts.seed ?? 0,
      draw: 0,
      temperature: opts.temperature ?? 0,
      topK: opts.topK ?? 0,
      topP: opts.topP ?? 1,
    };
    if (opts.maxTokens < 1 || this.pos + prompt.length > this.capacity) return;
    const { device } = this.model.gpu;
    const decodeIds = this.bound.decode.shared.io.ids;
    const staging = [0, 1].map(() =>
      device.createBuffer({ size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
    );
    // Hand the sampled token to the next decode step and to a staging buffer for the host.
    const handOff = (from: BoundPhase, slot: number) => (enc: GPUCommandEncoder) => {
      enc.copyBufferToBuffer(from.shared.io.token, 0, decodeIds, 0, 4);
      enc.copyBufferToBuffer(from.shared.io.token, 0, staging[slot], 0, 4);
    };
    try {
      const maxT = this.bound.prefill.shared.spec.maxT;
      for (let s = 0; s < prompt.length; s += maxT) {
        const chunk = Uint32Array.from(Array.prototype.slice.call(prompt, s, s + maxT) as number[]);
        const phase: PhaseName = chunk.length === 1 ? 'decode' : 'prefill';
        const last = s + maxT >= prompt.length;
        this.run(
          phase,
          chunk,
          1,
          { ...sampling, draw: this.draws },
          undefined,
          last ? handOff(this.bound[phase], 0) : undefined,
        );
      }
      this.draws++;
      for (let i = 0; i < opts.maxTokens; i++) {
        const slot = i % 2;
        // Feed token i (already in the decode ids buffer) while the host reads it back.
        if (this.pos < this.capacity) {
          this.run(
            'decode',
            null,
            1,
            { ...sampling, draw: this.draws },
            undefined,
            handOff(this.bound.decode, 1 - slot),
          );
          this.draws++;
        }
        await staging[slot].mapAsync(GPUMapMode.READ);
        const token = new Uint32Array(staging[slot].getMappedRange().slice(0))[0];
        staging[slot].unmap();
        yield token;
        if (opts.stopTokens?.includes(token) || this.pos >= this.capacity) return;
      }
    } finally {
      await device.queue.onSubmittedWorkDone();
      for (const b of staging) b.destroy();
    }
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
    const bytes = spec.shape.reduce((a, b) => a * b, 1) * 4;
    return readBuffer(this.model.gpu.device, buf, bytes);
  }

  destroy(): void {
    for (const b of this.state.values()) b.destroy();
  }
}
