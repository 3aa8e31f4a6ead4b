/**
 * The typed WGSL pieces every kernel shares: the dtype → WGSL type table, the one f32 literal
 * writer, and the storage bindings of an op read from its definition (src/ops/<family>.ts), so a
 * kernel generator never spells a binding, its element type or its access by hand. Binding order
 * is the definition's: the step uniform, then inputs as declared, then outputs that are not also
 * inputs. An output named like a read_write input is that input's binding (state updated in place).
 */
import type { DType } from '../../src/graph/ir.ts';
import type { OpAttrs } from '../../src/graph/ops.ts';
import { definitionFor } from '../../src/ops/index.ts';
import { STEP_BINDING, type BindingDecl } from '../kernel-ir.ts';

/** The one dtype → WGSL element type table. */
export const WGSL_TYPE: Record<DType, string> = { f32: 'f32', u32: 'u32' };

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
 */
export function opBindings(a: OpAttrs, reserved: readonly string[] = []): OpBindings {
  const def = definitionFor(a);
  if (!def) throw new Error(`${a.op}: no op definition to declare bindings from`);
  const storage: StorageBinding[] = [];
  for (const [name, r] of Object.entries(def.inputs(a))) {
    storage.push({ name, access: r.access, elem: WGSL_TYPE[r.dtype] });
  }
  for (const [name, r] of Object.entries(def.outputs(a))) {
    const input = storage.find((b) => b.name === name);
    if (!input) {
      storage.push({ name, access: 'read_write', elem: WGSL_TYPE[r.dtype] });
    } else if (input.access !== 'read_write' || input.elem !== WGSL_TYPE[r.dtype]) {
      throw new Error(`${a.op}: output '${name}' aliases an input that is not read_write alike`);
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
