/**
 * The one WGSL reader of stored weights (layouts: src/graph/dtype.ts; CPU encoder and decoder:
 * src/ops/weight-storage.ts). Matmuls and embedding gathers declare their weight binding with
 * `elem` and read it through the function `load`, so every schedule dequantises the same way.
 * A load returns one element, or with vec4 one unit of four consecutive elements (4i … 4i+3),
 * as f32; the kernels accumulate in f32 whatever the storage.
 */
import { dtypeBytes, quantScaleOffset, type WeightType } from '../../src/graph/dtype.ts';

export interface WeightBinding {
  /** WGSL element type of the binding's array. */
  elem: string;
  /** WGSL: `fn <name>(i: u32) -> f32 | vec4<f32>` reading unit i of binding `buf`. */
  load: (name: string, buf: string) => string;
}

/**
 * Binding and loader for a weight of type t with `elements` elements in its binding (the scales
 * of q8 and q4 follow all the codes). vec4 needs rows of a multiple of 4 elements; quantised rows
 * are whole blocks of 32, so they are only ever read in units of four.
 */
export function weightBinding(t: WeightType, elements: number, vec4: boolean): WeightBinding {
  const R = vec4 ? 'vec4<f32>' : 'f32';
  const fn = (name: string, body: string) => `
fn ${name}(i: u32) -> ${R} {
  ${body}
}`;
  if (t === 'f32') return { elem: R, load: (name, buf) => fn(name, `return ${buf}[i];`) };
  if (t === 'f16') {
    // vec4: one 8-byte load of four halves (the GEMV's bandwidth depends on it).
    return vec4
      ? {
          elem: 'vec2<u32>',
          load: (name, buf) =>
            fn(
              name,
              `let p = ${buf}[i];\n  return vec4<f32>(unpack2x16float(p.x), unpack2x16float(p.y));`,
            ),
        }
      : {
          elem: 'u32',
          load: (name, buf) => fn(name, `return unpack2x16float(${buf}[i >> 1u])[i & 1u];`),
        };
  }
  if (!vec4) throw new Error(`${t} weight: read in units of four (rows are whole blocks)`);
  const scaleWord = quantScaleOffset(t, elements) / 4;
  if (dtypeBytes(t, elements) % 4 !== 0) throw new Error(`${t} weight: unaligned layout`);
  // Block of element e is e >> 5; its f16 scale is half (block & 1) of word SCALES + block / 2.
  const scale = (block: string) =>
    `let b = ${block};\n  let d = unpack2x16float(BUF[${scaleWord}u + (b >> 1u)])[b & 1u];`;
  // Unit i holds elements 4i … 4i+3, all in block i >> 3.
  const body =
    t === 'q8'
      ? // Signed byte codes: shift each to the top of an i32, then arithmetic-shift it back.
        `${scale('i >> 3u')}
  let w = bitcast<vec4<i32>>(vec4<u32>(BUF[i]) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
  return vec4<f32>(w) * d;`
      : // Eight 4-bit codes per word, element e at bits 4(e & 7); value d · (code − 8).
        `${scale('i >> 3u')}
  let w = vec4<u32>(BUF[i >> 1u] >> (16u * (i & 1u))) >> vec4<u32>(0u, 4u, 8u, 12u);
  return (vec4<f32>(w & vec4<u32>(15u)) - 8.0) * d;`;
  return { elem: 'u32', load: (name, buf) => fn(name, body.replaceAll('BUF', buf)) };
}
