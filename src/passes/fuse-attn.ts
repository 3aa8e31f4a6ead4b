/**
 * qkv-append: attention without RoPE (Jamba's `rope: none`, MPT/ALiBi-free NoPE layers) gets the
 * fusion qkv-rope-append gives rotated attention: the q, k and v projections of one x and both
 * KV-cache appends → one matmul whose epilogue writes q and stores k and v rows in the caches
 * (MatmulAttrs.ropeKv with rotaryDim 0: nothing rotates, no cos/sin tables are bound). A decode
 * attention layer then takes three dispatches (qkv+append with the norm fused, attention,
 * o+residual) instead of five. Prefill gets it too: the tiled kernels share the epilogue.
 */
import type { Graph } from '../graph/ir.ts';
import { kvTypeOf } from '../graph/ops.ts';
import { Rewriter } from './rewrite.ts';
import { fits, isPlain, qkvAppendAttrs, type FusionOptions } from './fuse.ts';

export function fuseQkvAppend(g: Graph, { caps }: FusionOptions): Graph {
  const r = new Rewriter(g);
  for (const att of r.live()) {
    if (att.attrs.op !== 'attention') continue;
    const writes = r.live().filter((n) => n.attrs.op === 'kv_write');
    const kws = writes.filter((n) => n.outputs.cache === att.inputs.kcache);
    const vws = writes.filter((n) => n.outputs.cache === att.inputs.vcache);
    if (kws.length !== 1 || vws.length !== 1) continue;
    const [kw, vw] = [kws[0], vws[0]];
    if (kw.attrs.op !== 'kv_write' || vw.attrs.op !== 'kv_write') continue;
    // Whole rows only (MLA's column writes are not this), and no ring: a ring's positions run
    // past its rows, and ropeKv bounds positions by its capacity, which the rope tables gave.
    if (kw.attrs.columns || vw.attrs.columns || kw.attrs.ring || vw.attrs.ring) continue;
    const [q, k, v] = [att.inputs.q, kw.inputs.x, vw.inputs.x].map((t) => r.producer(t));
    if (!isPlain(q) || !isPlain(k) || !isPlain(v)) continue;
    if (q.inputs.x !== k.inputs.x || q.inputs.x !== v.inputs.x) continue;
    if (q.attrs.bias !== k.attrs.bias || q.attrs.bias !== v.attrs.bias) continue;
    if (q.attrs.wType !== k.attrs.wType || q.attrs.wType !== v.attrs.wType) continue;
    if (k.attrs.N !== v.attrs.N || k.attrs.N !== kw.attrs.width) continue;
    // q stays an output (it may have other readers); k and v exist no more.
    if (!r.soleConsumer(k.outputs.out) || !r.soleConsumer(v.outputs.out)) continue;
    const headDim = att.attrs.headDim;
    // The epilogue finishes column pairs (c, c + 1), so heads must be of even width.
    if (headDim % 2 !== 0 || q.attrs.N % headDim !== 0 || k.attrs.N % headDim !== 0) continue;
    const attrs = qkvAppendAttrs(q, k, {
      headDim,
      rotaryDim: 0,
      capacity: kw.attrs.capacity,
      kvType: kvTypeOf(att.attrs),
      ...((kw.attrs.batch ?? 1) > 1 ? { batch: kw.attrs.batch } : {}),
    });
    if (!fits(attrs, caps)) continue;
    // The parameter's name: HF's q_proj → qkv_proj where it is one, else the parts joined.
    const concat = (key: 'w' | 'bias', shape: number[]) => {
      const names = [q, k, v].map((m) => g.tensors[m.inputs[key]].name);
      const suffix = key === 'w' ? 'weight' : 'bias';
      const one = names[0].replace(new RegExp(`q_proj\\.${suffix}$`), `qkv_proj.${suffix}`);
      return r.param(one !== names[0] ? one : names.join('+'), shape, {
        kind: 'concat',
        parts: [q, k, v].map((m) => r.source(m.inputs[key])),
      });
    };
    const inputs: Record<string, number> = {
      x: q.inputs.x,
      w: concat('w', [attrs.N, q.attrs.K]),
      kcache: att.inputs.kcache,
      vcache: att.inputs.vcache,
    };
    if (attrs.bias) inputs.bias = concat('bias', [attrs.N]);
    r.replace(
      q,
      attrs,
      inputs,
      { out: q.outputs.out, kcache: att.inputs.kcache, vcache: att.inputs.vcache },
      `${q.label.replace(/\.q$/, '')} qkv+append`,
    );
    for (const n of [k, v, kw, vw]) r.remove(n);
  }
  return r.finish();
}
