/**
 * GraphIR (after passes) → a phase program: one or more kernel launches per
 * node, each binding named buffers. Buffers are referred to symbolically
 * (`param:<name>`, `state:<name>`, `slot:<i>`, `scratch:<name>`, `ids`,
 * `logits`, `token`) so the same program runs for every sequence and is
 * serialisable into the bundle manifest.
 */
import type { Graph, Tensor } from '../src/graph/ir.ts';
import { tensorBytes } from '../src/graph/ir.ts';
import { planMemory } from '../src/passes/memory.ts';
import { checkDenoisingOnly } from '../src/passes/denoising-only.ts';
import type { GridDim, Kernel } from './kernel-ir.ts';
import type { DeviceCaps } from '../src/target.ts';
import { generatorFor } from './kernels/index.ts';
import { definitionFor } from '../src/ops/index.ts';

export interface Dispatch {
  kernel: string;
  /** Binding name → buffer ref. */
  bind: Record<string, string>;
  grid: [GridDim, GridDim, GridDim];
  /** The graph node this launch implements. */
  label: string;
}

export interface PhaseProgram {
  phase: Graph['phase'];
  maxT: number;
  /** Activation slot sizes in bytes (liveness-planned). */
  slots: number[];
  /** Bytes the activations would take without reuse (for the inspect report). */
  unplannedBytes: number;
  scratch: Record<string, number>;
  dispatches: Dispatch[];
  ioBytes: { ids: number; logits: number; token: number };
}

/** Kernels by name; emit() adds to it so phases share identical kernels. */
export type KernelTable = Map<string, Kernel>;

export function bufferRef(t: Tensor, slotOf: Map<number, number>, g: Graph): string {
  if (t.id === g.ids) return 'ids';
  if (t.id === g.logits) return 'logits';
  if (t.id === g.token) return 'token';
  if (t.kind === 'param') return `param:${t.name}`;
  if (t.kind === 'state') return `state:${t.name}`;
  const slot = slotOf.get(t.id);
  if (slot === undefined) throw new Error(`activation ${t.name} has no buffer`);
  return `slot:${slot}`;
}

function addKernel(table: KernelTable, k: Kernel): string {
  for (const [name, have] of table) if (have.code === k.code) return name;
  let name = k.name;
  for (let i = 2; table.has(name); i++) name = `${k.name}_${i}`;
  table.set(name, { ...k, name });
  return name;
}

/**
 * A denoising-only node's launch (GraphNode.denoising) counts its rows in D instead of T, so that
 * its grid is empty in an encoding step; refused when no dimension would then be 0.
 */
function denoisingGrid(grid: Dispatch['grid'], kernel: string, label: string): Dispatch['grid'] {
  const out = grid.map((d) =>
    typeof d === 'object' && d.sym === 'T' ? { ...d, sym: 'D' as const } : d,
  ) as Dispatch['grid'];
  if (!out.some((d) => typeof d === 'object' && d.sym === 'D' && (d.add ?? 0) <= 0))
    throw new Error(
      `kernel ${kernel} (node '${label}') runs in denoising steps only, but no dimension of its grid ${JSON.stringify(grid)} is 0 when T is: it cannot be skipped in encoding steps`,
    );
  return out;
}

export function emitPhase(g: Graph, caps: DeviceCaps, kernels: KernelTable): PhaseProgram {
  checkDenoisingOnly(g);
  const plan = planMemory(g);
  const scratch: Record<string, number> = {};
  const dispatches: Dispatch[] = [];
  for (const node of g.nodes) {
    const gen = generatorFor(node.attrs)(node.attrs, { caps, maxT: g.maxT });
    // What the op writes: its outputs (in-place state among them), never an input it only reads.
    const writes = new Set(Object.keys(definitionFor(node.attrs).outputs(node.attrs)));
    const names: Record<string, string> = {};
    for (const [k, id] of [...Object.entries(node.inputs), ...Object.entries(node.outputs)]) {
      names[k] = bufferRef(g.tensors[id], plan.slotOf, g);
    }
    for (const [k, bytes] of Object.entries(gen.scratch)) {
      scratch[k] = Math.max(scratch[k] ?? 0, bytes);
      names[k] = `scratch:${k}`;
    }
    for (const launch of gen.launches) {
      const bind: Record<string, string> = {};
      for (const b of launch.kernel.bindings) {
        if (b.name === 'step') continue;
        const ref = names[b.name];
        if (!ref)
          throw new Error(
            `kernel ${launch.kernel.name} (node '${node.label}') binds '${b.name}', which the node does not have`,
          );
        if (b.access === 'read_write' && !writes.has(b.name) && !(b.name in gen.scratch)) {
          throw new Error(
            `kernel ${launch.kernel.name} (node '${node.label}') writes '${b.name}', which ${node.attrs.op} only reads`,
          );
        }
        bind[b.name] = ref;
      }
      dispatches.push({
        kernel: addKernel(kernels, launch.kernel),
        bind,
        grid: node.denoising
          ? denoisingGrid(launch.grid, launch.kernel.name, node.label)
          : launch.grid,
        label: node.label,
      });
    }
  }
  const vocabBytes = tensorBytes(g.tensors[g.logits], g.maxT);
  return {
    phase: g.phase,
    maxT: g.maxT,
    slots: plan.slotBytes,
    unplannedBytes: plan.unplannedBytes,
    scratch,
    dispatches,
    // token: the sampled id and the sampler's status word (src/ops/sampling.ts), per sequence of
    // a batched step.
    ioBytes: { ids: g.maxT * 4, logits: vocabBytes, token: tensorBytes(g.tensors[g.token], 1) },
  };
}
