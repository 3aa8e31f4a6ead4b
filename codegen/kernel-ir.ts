/**
 * KernelIR: what codegen hands the runtime. A kernel is WGSL plus its binding
 * list; a launch is a kernel with a dispatch grid that may depend on the step's
 * token count. Every kernel's binding 0 is the shared `Step` uniform, written
 * once per step, so one recorded command buffer serves any T and position.
 */

export type BindingAccess = 'read' | 'read_write' | 'uniform';

export interface BindingDecl {
  /** Name used by the emitter and tests to attach a buffer. */
  name: string;
  access: BindingAccess;
}

export interface Kernel {
  /** Stable, descriptive name (e.g. `matmul_rms_glu_t64x64`); unique per distinct code. */
  name: string;
  /** Complete WGSL module with a single `@compute fn main`. */
  code: string;
  /** Bindings of @group(0) in order: binding i is bindings[i]. bindings[0] is always `step`. */
  bindings: BindingDecl[];
  workgroupSize: [number, number, number];
}

/**
 * Symbols a grid may depend on, all read from the Step uniform at run time. 'D' (denoising rows)
 * is T in a step with keys > 0 (a phased model's denoising step) and 0 otherwise: the launches of
 * a node that runs in denoising steps only (GraphNode.denoising) count their rows in D, so in an
 * encoding step their grid is empty and the runtime records nothing for them.
 */
export type GridSymbol = 'T' | 'L' | 'D';

/** A constant, or ceil((sym * mul + add) / div). */
export type GridDim = number | { sym: GridSymbol; mul?: number; add?: number; div?: number };

export interface KernelLaunch {
  kernel: Kernel;
  grid: [GridDim, GridDim, GridDim];
}

/** Values of the grid symbols and of the Step uniform for one step. */
export interface StepParams {
  /** Tokens processed in this step. */
  T: number;
  /** Absolute position of the first of those tokens (tokens already in the cache). */
  pos: number;
  /** Rows of logits wanted, counted back from the last token (1 for generation, T for all). */
  L: number;
  /**
   * Bidirectional attention sees keys [0, max(pos + T, keys)) (src/graph/ops.ts StepShape):
   * cached rows after the step's own. Absent: 0.
   */
  keys?: number;
}

/** Whether a launch runs in denoising steps only: a dimension of its grid counts rows in D. */
export function denoisingOnly(grid: readonly GridDim[]): boolean {
  return grid.some((d) => typeof d === 'object' && d.sym === 'D');
}

export function resolveGridDim(d: GridDim, p: StepParams): number {
  if (typeof d === 'number') return d;
  const n = d.sym === 'D' ? ((p.keys ?? 0) > 0 ? p.T : 0) : p[d.sym];
  const v = n * (d.mul ?? 1) + (d.add ?? 0);
  return Math.ceil(v / (d.div ?? 1));
}

/**
 * The Step uniform. Its layout is fixed (16 u32 words) so that every kernel can
 * declare it with STEP_WGSL and the runtime writes it with writeStep().
 */
export const STEP_WGSL = /* wgsl */ `
struct Step {
  T: u32,        // tokens in this step
  pos: u32,      // absolute position of the first token
  L: u32,        // logit rows wanted (the last L of T)
  seed: u32,     // sampling seed
  draw: u32,     // sampling draw counter (advances each generated token)
  topK: u32,     // 0 = off
  temperature: f32, // 0 = greedy
  topP: f32,     // 1 = off
  keys: u32,     // bidirectional attention sees keys [0, max(pos + T, keys))
  _pad1: u32, _pad2: u32, _pad3: u32,
  _pad4: u32, _pad5: u32, _pad6: u32, _pad7: u32,
}
@group(0) @binding(0) var<uniform> step: Step;
`;

export const STEP_BYTES = 64;

export interface SamplingParams {
  seed: number;
  draw: number;
  topK: number;
  temperature: number;
  topP: number;
}

export const GREEDY: SamplingParams = { seed: 0, draw: 0, topK: 0, temperature: 0, topP: 1 };

export function encodeStep(p: StepParams, s: SamplingParams = GREEDY): ArrayBuffer {
  const buf = new ArrayBuffer(STEP_BYTES);
  const u = new Uint32Array(buf);
  const f = new Float32Array(buf);
  u[0] = p.T;
  u[1] = p.pos;
  u[2] = p.L;
  u[3] = s.seed >>> 0;
  u[4] = s.draw >>> 0;
  u[5] = s.topK >>> 0;
  f[6] = s.temperature;
  f[7] = s.topP;
  u[8] = p.keys ?? 0;
  return buf;
}

/** The binding declaration every kernel starts with. */
export const STEP_BINDING: BindingDecl = { name: 'step', access: 'uniform' };

/**
 * Batched decode with sequences at different positions (prefilled into their batch slots, each
 * from its own prompt length; runtime/batch.ts): row t of a batched step sits at position
 * step.pos + row_pos[t]. A phase-wide u32 buffer, one word per row, that the kernels which read
 * a batched row's position bind under this name (as scratch, so the bundle needs no new buffer
 * kind) and the runtime writes before the step. WebGPU zeroes new buffers, so a step whose rows
 * share step.pos (or a kernel test that never writes it) reads offsets of 0. Words past the
 * step's rows are free: batched H2O (codegen/kernels/h2o.ts), at the 8-buffer limit, asks for
 * more and keeps its probabilities there.
 */
export const ROW_POS = 'row_pos';

/** The row_pos binding as binding `index` of a batched kernel: its declaration and entry. */
export function rowPosBinding(index: number): { decl: string; binding: BindingDecl } {
  return {
    decl: storageDecl(index, ROW_POS, 'read', 'u32'),
    binding: { name: ROW_POS, access: 'read' },
  };
}

/** Scratch a kernel that binds row_pos asks for: a word per row of a step of up to maxT rows. */
export function rowPosScratch(maxT: number): Record<string, number> {
  return { [ROW_POS]: 4 * maxT };
}

/** WGSL forms of a kernel whose step rows are sequences when batched (see batchedRows). */
export interface BatchedRows {
  batched: boolean;
  /** Row t's position: a batched step's rows are sequences, each at its own (ROW_POS). */
  pos: string;
  /** Batched: row t's first KV cache row (sequence t's slice of `capacity` rows). */
  kvBase: string | undefined;
  /** KV cache row `j` of row t's sequence. */
  kvRow: (j: string) => string;
  /** The kernel name's suffix. */
  suffix: string;
  /** The row_pos scratch a batched kernel asks for. */
  scratch: (maxT: number) => Record<string, number>;
}

/**
 * A batched decode step's row t is sequence t's one token, at step.pos + row_pos[t], reading its
 * own slice of the KV caches (rows t·capacity..); with batch 1 these are the one-sequence forms,
 * so B = 1 code is what it was. Shared by the kernels that read per-row positions and caches
 * (codegen/kernels/nsa.ts, indexer.ts).
 */
export function batchedRows(a: { batch?: number; capacity: number }): BatchedRows {
  const batched = (a.batch ?? 1) > 1;
  const kvBase = batched ? `t * ${a.capacity}u` : undefined;
  return {
    batched,
    pos: batched ? `step.pos + ${ROW_POS}[t]` : 'step.pos + t',
    kvBase,
    kvRow: (j) => (kvBase ? `(${kvBase} + ${j})` : j),
    suffix: batched ? `_batch${a.batch}` : '',
    scratch: (maxT) => (batched ? rowPosScratch(maxT) : {}),
  };
}

/**
 * WGSL declarations of a kernel's storage buffers (f32 unless a binding gives its elem): every
 * binding after the step uniform (binding 0), numbered in order.
 */
export function storageDecls(bindings: readonly (BindingDecl & { elem?: string })[]): string {
  return bindings
    .slice(1)
    .map((b, i) => storageDecl(i + 1, b.name, b.access as 'read' | 'read_write', b.elem))
    .join('\n');
}

/** WGSL declaration for binding i of a storage buffer of `elem` (f32, u32, a vector of them, f16). */
export function storageDecl(
  binding: number,
  name: string,
  access: 'read' | 'read_write',
  elem = 'f32',
): string {
  return `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<${elem}>;`;
}
