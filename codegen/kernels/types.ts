import type { KernelLaunch } from '../kernel-ir.ts';
import type { DeviceCaps } from '../../src/target.ts';
import type { OpAttrs } from '../../src/graph/ops.ts';

/** What a kernel generator knows besides the op's attributes. */
export interface KernelContext {
  caps: DeviceCaps;
  /** Largest T this launch will see: 1 selects decode paths (GEMV, split-K attention). */
  maxT: number;
}

/**
 * A kernel generator returns one or more launches run in order (e.g. split-K
 * attention then its combine). Bindings are named like the op's inputs and
 * outputs; extra scratch buffers are declared in `scratch` with their byte sizes
 * computed for maxT.
 */
export interface GeneratedOp {
  launches: KernelLaunch[];
  scratch: Record<string, number>;
}

export type KernelGenerator<A extends OpAttrs> = (a: A, ctx: KernelContext) => GeneratedOp;
