/**
 * The pointwise op (semantics: src/ops/pointwise.ts): one thread per output element, evaluating
 * the expression tree rendered to one WGSL function. The same function is what the linear
 * recurrence kernel calls when the fusion pass folds a pointwise prologue into it, so an
 * expression has one WGSL rendering wherever it runs. Transcendentals go through the helpers of
 * wgsl-math.ts, which mirror the CPU functions the reference evaluates.
 */
import type {
  PointwiseAttrs,
  PointwiseBin,
  PointwiseExpr,
  PointwiseFn,
  PointwiseInput,
} from '../../src/graph/ops.ts';
import { exprInputs, pointwise } from '../../src/ops/pointwise.ts';
import type { KernelLaunch } from '../kernel-ir.ts';
import { STEP_WGSL } from '../kernel-ir.ts';
import { FLAT_MAIN_WGSL, flatGrid, streamWorkgroup } from './elementwise.ts';
import type { KernelGenerator } from './types.ts';
import { opBindings, wgslF32 } from './wgsl-builder.ts';
import { HELPER_NAMES, withHelpers } from './wgsl-math.ts';

/** Unary functions as WGSL calls; tanh goes through tanh_acc, which cannot overflow. */
const UNARY: Record<PointwiseFn, (x: string) => string> = {
  neg: (x) => `(-${x})`,
  exp: (x) => `exp(${x})`,
  log: (x) => `log(${x})`,
  log1p: (x) => `log1p(${x})`,
  sqrt: (x) => `sqrt(${x})`,
  tanh: (x) => `tanh_acc(${x})`,
  sigmoid: (x) => `sigmoid(${x})`,
  logsigmoid: (x) => `logsigmoid(${x})`,
  softplus: (x) => `softplus(${x})`,
  silu: (x) => `silu(${x})`,
  relu: (x) => `max(${x}, 0.0)`,
  elu1: (x) => `elu1(${x})`,
};

const BINARY: Record<PointwiseBin, (a: string, b: string) => string> = {
  add: (a, b) => `(${a} + ${b})`,
  sub: (a, b) => `(${a} - ${b})`,
  mul: (a, b) => `(${a} * ${b})`,
  div: (a, b) => `(${a} / ${b})`,
  max: (a, b) => `max(${a}, ${b})`,
  min: (a, b) => `min(${a}, ${b})`,
  logaddexp: (a, b) => `logaddexp(${a}, ${b})`,
};

/**
 * Identifiers a pointwise function uses besides its inputs' bindings: its parameters, the
 * builtins and helpers its expressions call. A binding of one of these names would shadow it.
 */
export const POINTWISE_RESERVED: readonly string[] = [
  't',
  'c',
  'exp',
  'log',
  'sqrt',
  'max',
  'min',
  ...HELPER_NAMES,
];

/** The WGSL value of an expression whose input `name` is the local `v_<name>`. */
export function wgslExpr(e: PointwiseExpr): string {
  if ('in' in e) return `v_${e.in}`;
  if ('const' in e) {
    const s = wgslF32(e.const);
    return s.startsWith('-') ? `(${s})` : s;
  }
  if ('fn' in e) return UNARY[e.fn](wgslExpr(e.x));
  return BINARY[e.bin](wgslExpr(e.a), wgslExpr(e.b));
}

/** The column (WGSL u32 expression) input `i` reads for output column `c`, simplified. */
export function wgslColumn(i: PointwiseInput, c: string): string {
  const offset = i.offset ?? 0;
  const base =
    i.repeat === 1
      ? c
      : i.inner === 1
        ? `${c} / ${i.repeat}u`
        : `${c} / ${i.inner * i.repeat}u * ${i.inner}u + ${c} % ${i.inner}u`;
  return offset === 0 ? base : `${offset}u + ${base}`;
}

/**
 * `fn <name>(t: u32, c: u32) -> f32`: the expression at token t, output column c, each input
 * read once, through its column map, from the binding of the same name (or `binding(name)`).
 * Inputs listed in `params` are not read but passed: `fn <name>(t, c, v_<p>: f32, …)`.
 */
export function pointwiseFunction(
  name: string,
  inputs: Record<string, PointwiseInput>,
  expr: PointwiseExpr,
  opts: { binding?: (n: string) => string; params?: readonly string[] } = {},
): string {
  const params = opts.params ?? [];
  const binding = opts.binding ?? ((n: string) => n);
  const loads = exprInputs(expr)
    .filter((n) => !params.includes(n))
    .map((n) => {
      const i = inputs[n];
      const col = wgslColumn(i, 'c');
      return `  let v_${n} = ${binding(n)}[${i.perToken ? `t * ${i.cols}u + ${col}` : col}];`;
    });
  const extra = params.map((p) => `, v_${p}: f32`).join('');
  return `fn ${name}(t: u32, c: u32${extra}) -> f32 {
${loads.join('\n')}
  return ${wgslExpr(expr)};
}`;
}

/** A short readable tag of an expression's operations, for kernel names. */
function exprTag(e: PointwiseExpr): string {
  if ('in' in e) return '';
  if ('const' in e) return '';
  if ('fn' in e) return [e.fn, exprTag(e.x)].filter((s) => s).join('_');
  return [e.bin, exprTag(e.a), exprTag(e.b)].filter((s) => s).join('_');
}

export const pointwiseKernel: KernelGenerator<PointwiseAttrs> = (a, { caps, maxT }) => {
  pointwise.check(a);
  const { bindings, decls } = opBindings(a, [
    ...POINTWISE_RESERVED,
    'i',
    'wid',
    'nwg',
    'lid',
    'main',
    'value',
    'WG',
    'WIDTH',
  ]);
  const wg = streamWorkgroup(caps);
  const code = `${STEP_WGSL}
${decls}
const WG: u32 = ${wg}u;
const WIDTH: u32 = ${a.width}u;

${pointwiseFunction('value', a.inputs, a.expr)}

${FLAT_MAIN_WGSL}
  if (i >= step.T * WIDTH) { return; }
  out[i] = value(i / WIDTH, i % WIDTH);
}
`;
  const tag = exprTag(a.expr).slice(0, 48) || 'copy';
  const launch: KernelLaunch = {
    kernel: {
      name: `pointwise_${tag}_w${a.width}`,
      code: withHelpers(code),
      bindings,
      workgroupSize: [wg, 1, 1],
    },
    grid: flatGrid('T', a.width, maxT, wg, caps),
  };
  return { launches: [launch], scratch: {} };
};
