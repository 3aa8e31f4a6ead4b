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
 * The dequantising expressions both readers share (layouts: src/graph/dtype.ts). q8: the four
 * signed byte codes of u32 word `w`, each shifted to the top of an i32 and arithmetic-shifted
 * back. q4: four 4-bit codes of word `w` at bits `shifts`, value code − 8. Both before the scale.
 */
const q8Codes = (w: string): string =>
  `vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(${w}) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u))`;
const q4Codes = (w: string, shifts: string): string =>
  `(vec4<f32>((vec4<u32>(${w}) >> vec4<u32>(${shifts})) & vec4<u32>(15u)) - 8.0)`;
/**
 * `let d`: the f16 scale of the block of unit i (8 units a block): half (b & 1) of word
 * scaleWord + b / 2, read through `word` (the binding's word access).
 */
const blockScale = (scaleWord: number, word: (w: string) => string): string =>
  `let b = i >> 3u;\n  let d = unpack2x16float(${word(`${scaleWord}u + (b >> 1u)`)})[b & 1u];`;

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
  // Unit i holds elements 4i … 4i+3, all in block i >> 3.
  const scale = blockScale(scaleWord, (w) => `BUF[${w}]`);
  const body =
    t === 'q8'
      ? `${scale}\n  return ${q8Codes('BUF[i]')} * d;`
      : // Eight 4-bit codes per word, element e at bits 4(e & 7): unit i is half i & 1 of word i / 2.
        `${scale}\n  return ${q4Codes('BUF[i >> 1u] >> (16u * (i & 1u))', '0u, 4u, 8u, 12u')} * d;`;
  return { elem: 'u32', load: (name, buf) => fn(name, body.replaceAll('BUF', buf)) };
}

/**
 * Binding and grouped reader for the decode GEMV, which gives each thread G consecutive load
 * units per loop step (G a power of two up to 8; the unit index i of the group a multiple of G):
 * WGSL `fn <name>(i: u32, x0, …, x{G-1}) -> f32`, the dot product of units i … i+G-1 with x0 …
 * x{G-1}. Wider groups read more bytes per load and decode a quantised block's scale once:
 * - f16 (K % 4 === 0), G ≥ 2: the binding is vec4<u32>, 16 bytes (two units) per load;
 * - q8, G ≥ 4: vec4<u32>, four units (16 codes) per load; q4, G = 8: vec4<u32>, the whole
 *   32-element block per load. A group lies in one block (8 units), so its one scale multiplies
 *   the sum. The scales are read from the same vec4<u32> binding: a tensor's last scale words
 *   may be the first of a 16-byte element the tensor only partly fills, so this needs the
 *   buffer rounded up to 16 bytes, as every storage buffer is (runtime/gpu.ts storageBytes);
 * - otherwise the words of the per-unit reader (q8: one u32 a unit; q4: G = 2 one whole word,
 *   G = 4 two), f32 and non-vec4 f16 as `weightBinding`'s load, unit by unit.
 * G = 1 is `weightBinding`'s reader itself.
 */
export function weightGroupBinding(
  t: WeightType,
  elements: number,
  vec4: boolean,
  G: number,
): WeightBinding {
  if (![1, 2, 4, 8].includes(G)) throw new Error(`weight group of ${G} units: not 1, 2, 4 or 8`);
  const X = vec4 ? 'vec4<f32>' : 'f32';
  const xs = Array.from({ length: G }, (_, g) => `x${g}`);
  const sig = (name: string) =>
    `fn ${name}(i: u32, ${xs.map((x) => `${x}: ${X}`).join(', ')}) -> f32`;
  const dot = (x: string, w: string) => (vec4 ? `dot(${x}, ${w})` : `(${x} * ${w})`);
  const fn = (name: string, lines: string[], ret: string) =>
    `\n${sig(name)} {\n  var s = 0.0;\n  ${lines.join('\n  ')}\n  return ${ret};\n}`;
  const perUnit = (): WeightBinding => {
    const one = weightBinding(t, elements, vec4);
    return {
      elem: one.elem,
      load: (name, buf) =>
        one.load(`${name}_unit`, buf) +
        fn(
          name,
          xs.map((x, g) => `s += ${dot(x, `${name}_unit(i + ${g}u)`)};`),
          's',
        ),
    };
  };
  if (t === 'f32' || (t === 'f16' && (!vec4 || G === 1))) return perUnit();
  if (t === 'f16') {
    // Word pair p of the group: units 2p (halves in .x, .y) and 2p + 1 (.z, .w).
    const lines: string[] = [];
    for (let p = 0; p < G / 2; p++) {
      lines.push(
        `let q${p} = BUF[(i >> 1u) + ${p}u];`,
        `s += dot(x${2 * p}, vec4<f32>(unpack2x16float(q${p}.x), unpack2x16float(q${p}.y)))` +
          ` + dot(x${2 * p + 1}, vec4<f32>(unpack2x16float(q${p}.z), unpack2x16float(q${p}.w)));`,
      );
    }
    return {
      elem: 'vec4<u32>',
      load: (name, buf) => fn(name, lines, 's').replaceAll('BUF', buf),
    };
  }
  if (!vec4) throw new Error(`${t} weight: read in units of four (rows are whole blocks)`);
  if (G === 1) return perUnit();
  if (dtypeBytes(t, elements) % 4 !== 0) throw new Error(`${t} weight: unaligned layout`);
  const scaleWord = quantScaleOffset(t, elements) / 4;
  const wide = (t === 'q8' && G >= 4) || (t === 'q4' && G === 8);
  // Word w of the buffer: BUF[w] in a u32 binding, component w & 3 of BUF[w >> 2] in vec4<u32>.
  const word = (w: string) => (wide ? `BUF[(${w}) >> 2u][(${w}) & 3u]` : `BUF[${w}]`);
  const scale = blockScale(scaleWord, word);
  // Codes of the group as u32 words c0, c1, …: q8 one word a unit, q4 one word per two units.
  const nWords = t === 'q8' ? G : G / 2;
  const first = t === 'q8' ? 'i' : '(i >> 1u)';
  const lines: string[] = [];
  if (wide) {
    for (let v = 0; v < nWords / 4; v++) lines.push(`let v${v} = BUF[(${first} >> 2u) + ${v}u];`);
  }
  const code = (j: number) => (wide ? `v${j >> 2}[${j & 3}]` : `BUF[${first} + ${j}u]`);
  for (let g = 0; g < G; g++) {
    if (t === 'q8') {
      lines.push(`s += dot(x${g}, ${q8Codes(code(g))});`);
    } else {
      // Unit g is nibbles 0–3 (g even) or 4–7 (g odd) of word g / 2; value d · (code − 8).
      const sh = g % 2 === 0 ? '0u, 4u, 8u, 12u' : '16u, 20u, 24u, 28u';
      lines.push(`s += dot(x${g}, ${q4Codes(code(g >> 1), sh)});`);
    }
  }
  return {
    elem: wide ? 'vec4<u32>' : 'u32',
    load: (name, buf) => fn(name, [scale, ...lines], 's * d').replaceAll('BUF', buf),
  };
}
