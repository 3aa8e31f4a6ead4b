/**
 * The typed WGSL pieces every kernel shares: the dtype → WGSL type table, the one f32 literal
 * writer, and the storage bindings of an op read from its definition (src/ops/<family>.ts), so a
 * kernel generator never spells a binding, its element type or its access by hand. Binding order
 * is the definition's: the step uniform, then inputs as declared, then outputs that are not also
 * inputs. An output named like a read_write input is that input's binding (state updated in place).
 *
 * Kernels that declare their bindings with opBindings: add, mul, act, glu, softcap, concat,
 * embed, norm, gated_norm, conv1d, rope, kv_write, pointwise, linear_recurrence, mamba1_step
 * (linear_recurrence's multi-pass prefill declares the subset of them each pass reads, then its
 * scratch buffers).
 * Kernels that still declare them by hand (each name must be one of the node's tensors, which
 * the emitter checks; the definition is what decides which tensors the node has):
 * - matmul (codegen/kernels/matmul/common.ts): vec4 and packed-f16 element types per schedule;
 *   its binding count, matmulStorageBindings, does come from the definition;
 * - attention: the split-K launches bind scratch instead of out;
 * - selective_scan and ssd: several launches over scratch, each with a subset of the op's tensors;
 * - moe_route (load as atomic<u32>), moe_group, moe_matmul (the grouped kernel binds the schedule
 *   and not ids) and moe_combine, through moe.ts's own `declare`;
 * - sample: logits, token and ids, the last two u32.
 */
import type { DType } from '../../src/graph/ir.ts';
import type { OpAttrs } from '../../src/graph/ops.ts';
import { definitionFor } from '../../src/ops/index.ts';
import type { TensorRule } from '../../src/ops/types.ts';
import { rowPosBinding, STEP_BINDING, type BindingDecl } from '../kernel-ir.ts';
import type { WeightBinding } from './weight-load.ts';

/**
 * The one dtype → WGSL element type table. Narrow weight types are bound as u32 words (f16 two
 * halves per word, unpacked with core WGSL's unpack2x16float so no shader-f16 is needed; q8 and
 * q4 codes then scales) and read through codegen/kernels/weight-load.ts.
 */
export const WGSL_TYPE: Record<DType, string> = {
  f32: 'f32',
  u32: 'u32',
  f16: 'u32',
  q8: 'u32',
  q4: 'u32',
};

/**
 * A WGSL f32 literal for x. Written as JavaScript prints it (shortest round trip of the f64),
 * which WGSL rounds to the nearest f32 exactly as Math.fround does; throws where that rounding
 * overflows, since WGSL has no infinite literal.
 */
export function wgslF32(x: number): string {
  if (!Number.isFinite(Math.fround(x))) throw new Error(`cannot write ${x} as a WGSL f32 literal`);
  const s = String(x);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** One storage binding of a kernel: what the emitter binds, and how WGSL declares it. */
export interface StorageBinding extends BindingDecl {
  access: 'read' | 'read_write';
  /** WGSL element type. */
  elem: string;
}

export interface OpBindings {
  /** The kernel's binding list: step first, then `storage` in order (binding i is bindings[i]). */
  bindings: BindingDecl[];
  storage: StorageBinding[];
  /** WGSL declarations of the storage bindings, numbered from 1. */
  decls: string;
}

/** WGSL identifiers: a binding name is declared as itself, so it must be one (and not `step`). */
const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_]*$/;

/**
 * The storage bindings of op `a` from its definition's inputs and outputs. `reserved` lists
 * identifiers the kernel uses at module scope or in its entry point; a binding named like one
 * would shadow or clash with it, so that is an error here rather than a WGSL compile failure.
 * Bindings named in `vec4` are declared as arrays of 4-vectors of their element type (kernels
 * that move four elements per thread). A stored weight is declared with the element its reader
 * (codegen/kernels/weight-load.ts) takes, given in `weights`.
 */
export function opBindings(
  a: OpAttrs,
  reserved: readonly string[] = [],
  vec4: readonly string[] = [],
  weights: Readonly<Record<string, WeightBinding>> = {},
): OpBindings {
  const def = definitionFor(a);
  const elem = (name: string, r: TensorRule) => {
    if (Object.hasOwn(weights, name)) return weights[name].elem;
    if (!vec4.includes(name)) return WGSL_TYPE[r.dtype];
    if (r.dtype !== 'f32' && r.dtype !== 'u32')
      throw new Error(`${a.op}: binding '${name}' of ${r.dtype} cannot be declared as vec4`);
    return `vec4<${WGSL_TYPE[r.dtype]}>`;
  };
  const storage: StorageBinding[] = [];
  for (const [name, r] of Object.entries(def.inputs(a))) {
    storage.push({ name, access: r.access, elem: elem(name, r) });
  }
  for (const [name, r] of Object.entries(def.outputs(a))) {
    const input = storage.find((b) => b.name === name);
    if (!input) {
      storage.push({ name, access: 'read_write', elem: elem(name, r) });
    } else if (input.access !== 'read_write' || input.elem !== elem(name, r)) {
      throw new Error(`${a.op}: output '${name}' aliases an input that is not read_write alike`);
    }
  }
  for (const name of vec4) {
    if (!storage.some((b) => b.name === name)) {
      throw new Error(`${a.op}: no binding '${name}' to declare as vec4`);
    }
  }
  for (const { name } of storage) {
    if (!IDENTIFIER.test(name) || name === STEP_BINDING.name || reserved.includes(name)) {
      throw new Error(`${a.op}: '${name}' cannot be a binding name in this kernel`);
    }
  }
  const decls = storage
    .map(
      (b, i) =>
        `@group(0) @binding(${i + 1}) var<storage, ${b.access}> ${b.name}: array<${b.elem}>;`,
    )
    .join('\n');
  return {
    bindings: [STEP_BINDING, ...storage.map(({ name, access }) => ({ name, access }))],
    storage,
    decls,
  };
}

/** A batched kernel's bindings plus row_pos (kernel-ir.ts ROW_POS), each row's position offset. */
export function withRowPos(batched: boolean, b: OpBindings): OpBindings {
  if (!batched) return b;
  const row = rowPosBinding(b.bindings.length);
  return { ...b, bindings: [...b.bindings, row.binding], decls: `${b.decls}\n${row.decl}` };
}
