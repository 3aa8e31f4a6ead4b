/**
 * Every op's one definition (src/ops/<family>.ts) against its own reference and against the
 * shape check: for representative attrs of every op kind (hand-written cases for the optional
 * inputs and outputs, plus every distinct node of small models, lowered and fused), the reference
 * run on random inputs sized by the input rules returns exactly the outputs the output rules
 * declare, with their element counts and dtypes; and checkShapes accepts a one-node graph built
 * from the rules and rejects a wrong one with a message naming the node, the tensor and both
 * shapes.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Dim, Graph, GraphNode, Tensor } from '../../src/graph/ir.ts';
import type { OpAttrs, OpName, StepShape } from '../../src/graph/ops.ts';
import { definitionFor, definitions, inPlaceOutputs } from '../../src/ops/index.ts';
import { groupPairs } from '../../src/ops/moe.ts';
import type { Arrays, HostArray, TensorRule } from '../../src/ops/types.ts';
import { checkShapes } from '../../src/passes/shapes.ts';
import { generatorFor } from '../../codegen/kernels/index.ts';
import { runPasses } from '../../src/passes/pipeline.ts';
import { lower } from '../../src/graph/lower.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { BASELINE_CAPS, type DeviceCaps } from '../../src/target.ts';
import type { ModelIR } from '../../src/spec/model.ts';
import { LAYER, RMS, mm, ropeCase } from '../helpers/matmul.ts';
import { attention, mlp, tinyLlama } from '../helpers/models.ts';
import { randn, rng } from '../helpers/numeric.ts';

const STEP: StepShape = { T: 3, pos: 2, L: 2 };
/** Enough storage bindings for every fused case here. */
const KERNEL_CAPS: DeviceCaps = { ...BASELINE_CAPS, maxStorageBuffersPerStage: 16 };

/** Attrs that exercise each op's optional inputs and outputs. */
const CASES: OpAttrs[] = [
  mm(5, 7),
  mm(5, 7, { rows: 'L', bias: true, prologue: LAYER, residual: true, scale: 0.5 }),
  mm(4, 6, { gated: true, act: 'silu', bias: true, prologue: RMS }),
  mm(9, 6, { splits: [2, 3, 4], bias: true }),
  // The second part of a split LM head: it reads the columns the first part wrote.
  mm(3, 6, { rows: 'L', outStride: 7, outOffset: 4 }),
  mm(4, 6, { rows: 'L', outStride: 7, outOffset: 0 }),
  // The matmul-prologue and matmul-epilogue fusions: an x map and an epilogue with their inputs.
  mm(4, 6, {
    gated: true,
    act: 'silu',
    residual: true,
    xMap: {
      inputs: {
        x: { perToken: true, cols: 6, inner: 6, repeat: 1 },
        p_prev: { perToken: true, cols: 6, inner: 6, repeat: 1 },
        p_mu: { perToken: false, cols: 6, inner: 6, repeat: 1 },
      },
      expr: {
        bin: 'add',
        a: { in: 'x' },
        b: {
          bin: 'mul',
          a: { bin: 'sub', a: { in: 'p_prev' }, b: { in: 'x' } },
          b: { in: 'p_mu' },
        },
      },
    },
    epilogue: {
      inputs: { e_g: { perToken: true, cols: 4, inner: 4, repeat: 1 } },
      expr: { bin: 'mul', a: { fn: 'tanh', x: { in: 'y' } }, b: { in: 'e_g' } },
    },
  }),
  ropeCase(2, 1, 4, 2, 6, { bias: true, prologue: LAYER }),
  {
    op: 'attention',
    heads: 4,
    kvHeads: 2,
    headDim: 6,
    vHeadDim: 4,
    scale: 0.4,
    causal: true,
    window: 2,
    softcap: 30,
    sinks: true,
    capacity: 8,
  },
  { op: 'kv_write', width: 8, capacity: 6, columns: null },
  {
    op: 'kv_write',
    width: 12,
    capacity: 6,
    columns: { heads: 2, cols: 2, offset: 4, broadcast: true },
  },
  { op: 'rope', heads: 2, headDim: 6, rotaryDim: 4, pairs: 'interleaved', capacity: 7 },
  { op: 'norm', norm: LAYER, width: 8, group: 8, residual: true },
  { op: 'norm', norm: { kind: 'l2', eps: 1e-6 }, width: 8, group: 4, residual: false },
  { op: 'embed', vocab: 11, dim: 5, scale: 2, rowStart: 0, rows: 11, tableType: 'f32' },
  { op: 'embed', vocab: 11, dim: 5, scale: 1, rowStart: 4, rows: 7, tableType: 'f32' },
  { op: 'add', width: 5, scale: 0.25 },
  { op: 'mul', width: 5 },
  { op: 'concat', widthA: 3, widthB: 5 },
  { op: 'act', act: 'gelu', width: 6 },
  { op: 'glu', act: 'silu', width: 6 },
  { op: 'softcap', cap: 30, width: 7, rows: 'L' },
  { op: 'sample', vocab: 9 },
  { op: 'token_shift', width: 5 },
  { op: 'group_sum', width: 12, group: 4 },
  { op: 'state_rows', rows: 5, width: 6 },
  { op: 'softmax_rows', rows: 5, vocab: 7 },
  { op: 'entropy_rows', vocab: 7 },
  { op: 'add', width: 6, scale: 1, phased: true },
  { op: 'head_matmul', heads: 3, N: 5, K: 4, wLayout: 'nk' },
  { op: 'head_matmul', heads: 2, N: 3, K: 7, wLayout: 'kn' },
  { op: 'concat', widthA: 6, widthB: 4, groups: 2 },
  {
    op: 'attention',
    heads: 3,
    kvHeads: 1,
    headDim: 7,
    vHeadDim: 5,
    scale: 0.3,
    causal: true,
    window: null,
    softcap: null,
    sinks: false,
    capacity: 9,
    vFromK: 0,
  },
  // H2O: a budget past the step (rows fill in order), and one the step evicts from.
  {
    op: 'h2o_attention',
    heads: 4,
    kvHeads: 2,
    headDim: 3,
    scale: 0.5,
    softcap: null,
    budget: 8,
    recent: 2,
    sinkTokens: 1,
  },
  {
    op: 'h2o_attention',
    heads: 2,
    kvHeads: 2,
    headDim: 4,
    scale: 0.5,
    softcap: 3,
    budget: 3,
    recent: 0,
    sinkTokens: 0,
  },
  // NSA: blocks of 2 over a step that completes some of them.
  { op: 'nsa_compress', kvHeads: 2, headDim: 3, block: 2, capacity: 9 },
  {
    op: 'nsa_compressed',
    heads: 4,
    kvHeads: 2,
    headDim: 3,
    scale: 0.5,
    block: 2,
    select: 3,
    capacity: 9,
  },
  {
    op: 'nsa_selected',
    heads: 4,
    kvHeads: 2,
    headDim: 3,
    scale: 0.5,
    block: 2,
    select: 2,
    capacity: 9,
  },
  // DeepSeek sparse attention: a topk below the visible positions, values from a cache or
  // from the key rows (MLA's latent).
  {
    op: 'indexer_topk',
    heads: 3,
    dim: 4,
    topk: 3,
    scale: 0.5,
    weightScale: 0.6,
    capacity: 8,
  },
  {
    op: 'sparse_attention',
    heads: 4,
    kvHeads: 2,
    headDim: 3,
    vHeadDim: 5,
    scale: 0.5,
    topk: 3,
    capacity: 8,
  },
  {
    op: 'sparse_attention',
    heads: 2,
    kvHeads: 1,
    headDim: 6,
    vHeadDim: 4,
    scale: 0.5,
    topk: 2,
    capacity: 8,
    vFromK: 1,
  },
  { op: 'norm', norm: LAYER, width: 8, group: 4, residual: false, perChannel: true },
  { op: 'conv1d', channels: 5, kernel: 4, bias: true, silu: true },
  { op: 'conv1d', channels: 5, kernel: 2, bias: false, silu: false },
  { op: 'selective_scan', dInner: 6, dState: 3 },
  { op: 'mamba1_step', dInner: 6, dState: 3, dtRank: 2, normEps: 1e-6, xProj: true },
  { op: 'mamba1_step', dInner: 5, dState: 1, dtRank: 3, normEps: null, xProj: false },
  {
    op: 'ssd',
    heads: 4,
    headDim: 3,
    dState: 2,
    groups: 2,
    chunk: 2,
    dtMin: 0,
    dtMax: 1e9,
  },
  { op: 'gated_norm', width: 8, group: 4, eps: 1e-5, normBeforeGate: true },
  {
    op: 'linear_recurrence',
    heads: 4,
    qHeads: 2,
    kHeads: 2,
    vHeads: 4,
    gateHeads: 4,
    keyDim: 3,
    valueDim: 2,
    scale: 0.5,
    decay: 'fixed',
    update: 'add',
    normalize: true,
    normEps: 1e-6,
  },
  {
    op: 'linear_recurrence',
    heads: 2,
    qHeads: 2,
    kHeads: 2,
    vHeads: 2,
    gateHeads: 2,
    keyDim: 3,
    valueDim: 2,
    scale: 1,
    decay: 'key',
    update: 'dplr',
    normalize: false,
    normEps: 0,
  },
  {
    // Gated DeltaNet's decode after the recurrence-prologue fusion: β and g computed from b|a.
    op: 'linear_recurrence',
    heads: 2,
    qHeads: 1,
    kHeads: 1,
    vHeads: 2,
    gateHeads: 2,
    keyDim: 4,
    valueDim: 3,
    scale: 0.5,
    decay: 'head',
    update: 'delta',
    normalize: false,
    normEps: 0,
    prologue: {
      exprs: {
        beta: {
          inputs: { in_ba: { perToken: true, cols: 4, inner: 2, repeat: 1 } },
          expr: { fn: 'sigmoid', x: { in: 'in_ba' } },
        },
        g: {
          inputs: {
            in_ba: { perToken: true, cols: 4, inner: 2, repeat: 1, offset: 2 },
            in_a: { perToken: false, cols: 2, inner: 2, repeat: 1 },
          },
          expr: {
            bin: 'mul',
            a: { fn: 'neg', x: { fn: 'exp', x: { in: 'in_a' } } },
            b: { in: 'in_ba' },
          },
        },
      },
      l2: { q: 1e-6, k: 1e-6 },
    },
  },
  {
    op: 'pointwise',
    width: 6,
    inputs: {
      x: { perToken: true, cols: 6, inner: 6, repeat: 1 },
      bias: { perToken: false, cols: 2, inner: 1, repeat: 3 },
    },
    expr: { fn: 'softplus', x: { bin: 'add', a: { in: 'x' }, b: { in: 'bias' } } },
  },
  {
    op: 'moe_route',
    experts: 8,
    topK: 3,
    scoring: 'sigmoid',
    normalize: true,
    scale: 2.5,
    correctionBias: true,
    groups: 4,
    topkGroups: 2,
  },
  { op: 'moe_group', experts: 5, topK: 2 },
  {
    op: 'moe_matmul',
    experts: 5,
    topK: 2,
    N: 3,
    K: 4,
    input: 'token',
    gated: true,
    act: 'silu',
    clamp: null,
    bias: true,
    grouped: true,
    expertStart: 0,
    expertCount: 5,
    wType: 'f32',
  },
  {
    // The second part of an expert projection split over bindings.
    op: 'moe_matmul',
    experts: 5,
    topK: 2,
    N: 3,
    K: 4,
    input: 'pair',
    gated: false,
    act: null,
    clamp: null,
    bias: false,
    grouped: false,
    expertStart: 3,
    expertCount: 2,
    wType: 'f32',
  },
  {
    op: 'moe_combine',
    topK: 2,
    width: 5,
    scale: 1.5,
    residual: true,
    shared: true,
    sharedGate: true,
  },
];

/**
 * Small models whose nodes (lowered, fused, and split under a tiny binding limit) join the cases;
 * with whether one expert's weights fit that limit.
 */
function models(): [ModelIR, boolean][] {
  const deltanet = {
    kind: 'gated_deltanet',
    keyHeads: 2,
    valueHeads: 4,
    keyHeadDim: 6,
    valueHeadDim: 5,
    dConv: 4,
    normEps: 1e-6,
  } as const;
  const hybrid = tinyLlama({
    dim: 24,
    vocab: 40,
    logitSoftcap: 20,
    layers: [
      { index: 0, mixerName: 'dn', mixer: deltanet, ffnName: 'mlp', ffn: mlp({ hidden: 32 }) },
      {
        index: 1,
        mixerName: 'attn',
        mixer: attention({ headDim: 6, qkNorm: true, outputGate: true }),
        ffnName: 'mlp',
        ffn: mlp({ hidden: 32 }),
      },
    ],
  });
  const spec = (s: string) => loadSpec(join('specs', `${s}.strata`));
  return [
    [hybrid, true],
    [spec('tiny-hybrid'), true],
    [spec('tiny-moe'), true],
    [spec('granite-tiny-hybrid'), true],
    [spec('demo-hybrid'), false],
  ];
}

function harvested(): OpAttrs[] {
  const tiny = { ...BASELINE_CAPS, maxStorageBindingBytes: 1 << 15, maxBufferBytes: 1 << 15 };
  const seen = new Set<string>();
  const perOp = new Map<string, number>();
  const out: OpAttrs[] = [];
  for (const [m, splits] of models()) {
    for (const phase of ['prefill', 'decode'] as const) {
      const runs: [DeviceCaps, boolean][] = [
        [BASELINE_CAPS, false],
        [{ ...BASELINE_CAPS, maxStorageBuffersPerStage: 16 }, true],
        ...(splits ? [[tiny, true] as [DeviceCaps, boolean]] : []),
      ];
      for (const [caps, fuse] of runs) {
        const g = runPasses(lower(m, { phase, maxT: 4, capacity: 16 }), { caps, fuse }).graph;
        for (const n of g.nodes) {
          const key = JSON.stringify(n.attrs);
          const count = perOp.get(n.attrs.op) ?? 0;
          if (seen.has(key) || count >= 8) continue;
          seen.add(key);
          perOp.set(n.attrs.op, count + 1);
          out.push(n.attrs);
        }
      }
    }
  }
  return out;
}

function dims(shape: Dim[], step: StepShape): number {
  return shape.reduce<number>((n, d) => n * (d === 'T' ? step.T : d === 'L' ? step.L : d), 1);
}

/** Distinct experts per token, like a router's choice. */
function expertIds(T: number, topK: number, experts: number, r: () => number): Uint32Array {
  const ids = new Uint32Array(T * topK);
  for (let t = 0; t < T; t++) {
    const pick = Array.from({ length: experts }, (_, e) => e).sort(() => r() - 0.5);
    ids.set(pick.slice(0, topK), t * topK);
  }
  return ids;
}

/** Random inputs sized by the input rules; u32 inputs hold values the op can take. */
function inputsFor(a: OpAttrs, rules: Record<string, TensorRule>, seed: number): Arrays {
  const r = rng(seed);
  const inputs: Arrays = {};
  for (const [i, [name, rule]] of Object.entries(rules).entries()) {
    const n = dims(rule.shape, STEP);
    if (rule.dtype === 'f32') {
      inputs[name] = randn(n, seed + i, 0.5);
      continue;
    }
    if (name === 'ids' && 'experts' in a && 'topK' in a) {
      inputs.ids = expertIds(STEP.T, a.topK, a.experts, r);
    } else if (name === 'ids' && a.op === 'embed') {
      inputs.ids = Uint32Array.from({ length: n }, () => Math.floor(r() * a.vocab));
    } else {
      inputs[name] = new Uint32Array(n);
    }
  }
  if (a.op === 'moe_matmul' && a.grouped) {
    const g = groupPairs(inputs.ids, STEP.T * a.topK, a.experts);
    inputs.offsets = g.offsets;
    inputs.order = g.order;
  }
  return inputs;
}

const copy = (x: Arrays): Arrays =>
  Object.fromEntries(Object.entries(x).map(([k, v]) => [k, v.slice() as HostArray]));

/** A graph of one node over tensors shaped by the rules (in-place outputs reuse their input). */
function oneNodeGraph(a: OpAttrs): Graph {
  const def = definitionFor(a);
  const tensors: Tensor[] = [];
  const tensor = (name: string, r: TensorRule): number => {
    tensors.push({ id: tensors.length, name, shape: r.shape, dtype: r.dtype, kind: 'activation' });
    return tensors.length - 1;
  };
  const inputs: Record<string, number> = {};
  for (const [name, r] of Object.entries(def.inputs(a))) inputs[name] = tensor(name, r);
  const outputs: Record<string, number> = {};
  for (const [name, r] of Object.entries(def.outputs(a))) {
    outputs[name] = r.access === 'read_write' ? inputs[name] : tensor(`${name}'`, r);
  }
  const node: GraphNode = { id: 0, attrs: a, inputs, outputs, layer: null, label: `the ${a.op}` };
  return {
    phase: 'prefill',
    maxT: 4,
    capacity: 16,
    tensors,
    nodes: [node],
    ids: 0,
    logits: 0,
    token: 0,
  };
}

/** The same graph with one tensor's first numeric dimension grown by one. */
function withWrongShape(g: Graph, id: number): { g: Graph; got: Dim[] } {
  const t = g.tensors[id];
  const i = t.shape.findIndex((d) => typeof d === 'number');
  const got = t.shape.map((d, j) => (j === i ? (d as number) + 1 : d));
  const tensors = g.tensors.map((x) => (x.id === id ? { ...x, shape: got } : x));
  return { g: { ...g, tensors }, got };
}

const ALL = [...CASES, ...harvested()];
const describeAttrs = (a: OpAttrs) => JSON.stringify(a).slice(0, 160);

describe('op definitions', () => {
  it('cover every op kind with at least one case', () => {
    const covered = new Set(ALL.map((a) => a.op));
    const missing = (Object.keys(definitions) as OpName[]).filter((op) => !covered.has(op));
    expect(missing, 'op kinds without a case here: add one to CASES').toEqual([]);
  });

  it('pair each in-place output with a read_write input of its name, and nothing else', () => {
    for (const a of ALL) {
      const def = definitionFor(a);
      const ins = def.inputs(a);
      const outs = def.outputs(a);
      for (const [name, r] of Object.entries(outs)) {
        const inPlace = ins[name]?.access === 'read_write';
        expect(r.access === 'read_write', `${describeAttrs(a)}: output ${name}`).toBe(inPlace);
        if (ins[name])
          expect(inPlace, `${describeAttrs(a)}: ${name} is read and written`).toBe(true);
      }
      for (const [name, r] of Object.entries(ins)) {
        if (r.access === 'read_write')
          expect(outs[name], `${describeAttrs(a)}: ${name}`).toEqual(r);
      }
    }
  });

  it('derive in-place outputs: state, caches, counts and outputs shared by split nodes', () => {
    const byOp = (a: OpAttrs) => inPlaceOutputs(a);
    expect(byOp(CASES[0])).toEqual({});
    expect(byOp(CASES[4])).toEqual({ out: 'out' });
    expect(byOp(CASES[5])).toEqual({});
    expect(byOp(ropeCase(2, 1, 4, 2, 6))).toEqual({ kcache: 'kcache', vcache: 'vcache' });
    for (const a of ALL) {
      const want =
        a.op === 'kv_write'
          ? { cache: 'cache' }
          : ['conv1d', 'selective_scan', 'mamba1_step', 'ssd', 'linear_recurrence'].includes(a.op)
            ? { state: 'state' }
            : a.op === 'moe_route'
              ? { load: 'load' }
              : a.op === 'sample'
                ? { ids: 'ids' }
                : null;
      if (want) expect(byOp(a), a.op).toEqual(want);
    }
  });

  for (const [i, a] of ALL.entries()) {
    describe(`${a.op} #${i}`, () => {
      const def = definitionFor(a);

      it('has a reference whose outputs are the declared ones, with their sizes', () => {
        def.check(a);
        const inputs = inputsFor(a, def.inputs(a), 1000 + i);
        const got = def.reference(a, copy(inputs), STEP);
        const outs = def.outputs(a);
        expect(Object.keys(got).sort(), describeAttrs(a)).toEqual(Object.keys(outs).sort());
        for (const [name, r] of Object.entries(outs)) {
          const v = got[name];
          expect(v.length, `${describeAttrs(a)}: output ${name} [${r.shape}]`).toBe(
            dims(r.shape, STEP),
          );
          expect(v instanceof Uint32Array, `${name} is ${r.dtype}`).toBe(r.dtype === 'u32');
        }
        const cost = def.cost(a, STEP);
        for (const v of Object.values(cost)) expect(Number.isFinite(v) && v >= 0).toBe(true);
      });

      it("has kernels that bind only the op's tensors (and scratch), writing only its outputs", () => {
        const ins = def.inputs(a);
        const outs = def.outputs(a);
        for (const maxT of [1, 4]) {
          const gen = generatorFor(a)(a, { caps: KERNEL_CAPS, maxT });
          for (const { kernel } of gen.launches) {
            for (const b of kernel.bindings) {
              if (b.name === 'step' || b.name in gen.scratch) continue;
              const what = `${kernel.name} binds ${b.name} (${b.access})`;
              expect(b.name in ins || b.name in outs, what).toBe(true);
              if (b.access === 'read_write') expect(b.name in outs, what).toBe(true);
            }
          }
        }
      });

      it('passes the shape check as declared and fails it with a wrong shape', () => {
        const g = oneNodeGraph(a);
        expect(() => checkShapes(g)).not.toThrow();
        const node = g.nodes[0];
        for (const side of ['input', 'output'] as const) {
          const named = side === 'input' ? node.inputs : node.outputs;
          const entry = Object.entries(named).find(([, id]) =>
            g.tensors[id].shape.some((d) => typeof d === 'number'),
          );
          if (!entry) continue;
          const [name, id] = entry;
          const want = g.tensors[id].shape;
          const bad = withWrongShape(g, id);
          // An in-place tensor is the input and the output: the input is named first.
          const which = side === 'output' && node.inputs[name] === id ? 'input' : side;
          expect(() => checkShapes(bad.g)).toThrow(
            `node 'the ${a.op}': ${which} '${name}' has shape [${bad.got}], expected [${want}]`,
          );
        }
      });
    });
  }

  it('rejects missing, unknown and non-aliased in-place tensors, naming the node', () => {
    const conv = oneNodeGraph({ op: 'conv1d', channels: 5, kernel: 4, bias: true, silu: true });
    const node = conv.nodes[0];
    const without = { ...node, inputs: { ...node.inputs } };
    delete without.inputs.bias;
    expect(() => checkShapes({ ...conv, nodes: [without] })).toThrow(
      "node 'the conv1d': missing input 'bias'",
    );
    const extra = { ...node, inputs: { ...node.inputs, z: node.inputs.x } };
    expect(() => checkShapes({ ...conv, nodes: [extra] })).toThrow(
      "node 'the conv1d': input 'z' is not an input of conv1d here",
    );
    const copyState = { ...conv.tensors[node.inputs.state], id: conv.tensors.length };
    const split = { ...node, outputs: { ...node.outputs, state: copyState.id } };
    expect(() =>
      checkShapes({ ...conv, tensors: [...conv.tensors, copyState], nodes: [split] }),
    ).toThrow("node 'the conv1d': input 'state' is updated in place");
    const badAttrs = { ...node, attrs: { ...node.attrs, kernel: 1 } as OpAttrs };
    expect(() => checkShapes({ ...conv, nodes: [badAttrs] })).toThrow(
      "node 'the conv1d': conv1d: kernel must be an integer >= 2",
    );
    const u32 = oneNodeGraph({ op: 'moe_group', experts: 5, topK: 2 });
    const ids = u32.nodes[0].inputs.ids;
    const asF32 = u32.tensors.map((t) => (t.id === ids ? { ...t, dtype: 'f32' as const } : t));
    expect(() => checkShapes({ ...u32, tensors: asF32 })).toThrow(
      "node 'the moe_group': input 'ids' has dtype f32, expected u32",
    );
  });
});
