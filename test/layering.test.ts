/**
 * The pipeline runs one way (README, "How it is built"): a stage reads the stages before it
 * and never reaches into a later one, and the browser-safe code never imports Node. This test
 * reads the import statements of every .ts file of the stage folders and names each one that
 * breaks the rule.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SCANNED = ['grammar', 'formats', 'src', 'codegen', 'runtime'];

type Stage =
  'formats' | 'formats/node' | 'grammar' | 'src' | 'codegen' | 'runtime' | 'runtime/node' | 'cli';

/** Folder prefixes, most specific first: a file belongs to the first that matches. */
const STAGE_OF: [string, Stage][] = [
  ['src/cli/', 'cli'],
  ['runtime/node/', 'runtime/node'],
  ['formats/node/', 'formats/node'],
  ['formats/', 'formats'],
  ['grammar/', 'grammar'],
  ['src/', 'src'],
  ['codegen/', 'codegen'],
  ['runtime/', 'runtime'],
];

/**
 * The one table of allowed directions: which stages a stage may import (values and types).
 * - The pipeline order is grammar → src (spec, import, graph, ops, passes, target) → codegen →
 *   runtime; each reads only the stages before it, so an earlier stage never depends on how a
 *   later one is written.
 * - formats/ (safetensors, tensor slices) is neutral: importers, the CLI and the runtime all
 *   read checkpoint bytes, so it depends on no stage and every stage may read it;
 *   formats/node/ is its Node file reader.
 * - runtime/ ships to browsers: from the compiler it takes types, plus the values of the
 *   modules in RUNTIME_VALUE_IMPORTS; only runtime/node/ may use Node.
 * - src/cli wires the whole pipeline, so it is the one place that may import every stage.
 */
const ALLOWED: Record<Stage, readonly Stage[]> = {
  formats: ['formats'],
  'formats/node': ['formats', 'formats/node'],
  grammar: ['formats', 'grammar'],
  src: ['formats', 'formats/node', 'grammar', 'src'],
  codegen: ['formats', 'formats/node', 'grammar', 'src', 'codegen'],
  runtime: ['formats', 'runtime'],
  'runtime/node': ['formats', 'formats/node', 'runtime', 'runtime/node'],
  cli: ['formats', 'formats/node', 'grammar', 'src', 'codegen', 'runtime', 'runtime/node', 'cli'],
};

/** Stages the runtime may take types from (erased at build time, so nothing ships). */
const RUNTIME_TYPE_SOURCES: readonly Stage[] = ['src', 'codegen'];

/**
 * Compiler modules whose values the runtime (and runtime/node) may import, each with why.
 * Adding one means the browser runtime ships it and everything it imports.
 */
const RUNTIME_VALUE_IMPORTS: Record<string, string> = {
  'codegen/kernel-ir.ts':
    'KernelIR is the runtime input; it encodes the Step uniform both sides share',
  'codegen/manifest.ts': 'the bundle format codegen writes and the runtime reads',
  'src/spec/load-data.ts': "a bundle's model is checked with the same rules as a spec",
  'src/import/names.ts': 'the manifest check finds the embedding by its canonical name',
  'src/ops/sampling.ts': "the sampler's non-finite flag value, set by kernel and reference alike",
  'src/ops/diffusion.ts':
    "the diffusion sampler's schedule, seeded noise and pick: one definition for the GPU run and the CPU reference",
  'src/ops/diffusion-entropy.ts':
    "DiffusionGemma's entropy-bound sampler and its self-conditioning state: one definition for the GPU run and the CPU reference",
  'src/ops/block-diffusion.ts':
    "the block-diffusion (BD3-LM) sampler's loop and draws: one definition for the cached GPU run and the recompute-everything reference",
  'codegen/kernels/diffusion-pick.ts':
    "the diffusion sampler's GPU pick, built at load time for the bundle's vocab (no compiled phase runs it)",
  'codegen/kernels/block-draw.ts':
    "the block-diffusion sampler's GPU draw (--pick gpu), built at load time for the bundle's vocab and mask id (no compiled phase runs it); it imports what diffusion-pick.ts does",
  'codegen/kernels/softmax-rows.ts':
    "DiffusionGemma's self-conditioning softmax, built at load time for the bundle's vocab and run after each denoising step (no compiled phase runs it); its bindings come from the op's definition. Only runtime/entropy-diffusion.ts imports it, which the browser runtime does not (web.ts refuses entropy_bound models)",
  'src/ops/entropy-rows.ts':
    "the entropy_rows kernel's word layout, error bounds and the exactness check over them: one definition with the op's CPU reference",
  'codegen/kernels/entropy-rows.ts':
    "DiffusionGemma's per-row sampler statistics (argmax, drawn token, entropy), built at load time for the bundle's vocab and run after each denoising step so the host reads 28 bytes a row instead of the logits; its bindings and reference come from the op's definition (src/ops/entropy-rows.ts, which it imports). Only runtime/entropy-diffusion.ts imports it",
  'src/graph/dtype.ts':
    'buffer sizes of stored weights and state by dtype, one table with the compiler',
};

/** Stages that must run in a browser: no Node built-in modules. */
const BROWSER_SAFE: readonly Stage[] = ['formats', 'runtime'];

function stageOf(path: string): Stage | null {
  for (const [prefix, stage] of STAGE_OF) if (path.startsWith(prefix)) return stage;
  return null;
}

function tsFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory()) return tsFiles(path);
    return e.isFile() && e.name.endsWith('.ts') ? [path] : [];
  });
}

interface ImportRef {
  specifier: string;
  typeOnly: boolean;
  line: number;
}

/**
 * The module specifiers a file imports or re-exports, with whether the statement is type-only
 * (`import type`, `export type`, or every named binding marked `type`). Comments are blanked
 * first, keeping line numbers, so commented-out imports do not count.
 */
function importsOf(text: string): ImportRef[] {
  const code = text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, (c) => c.replace(/[^\n]/g, ' '));
  const lineAt = (i: number) => code.slice(0, i).split('\n').length;
  const refs: ImportRef[] = [];
  const stmt = /\b(import|export)\s+(type\s+)?([\w*\s{},$]*?)\s*from\s*['"]([^'"]+)['"]/g;
  for (const m of code.matchAll(stmt)) {
    const clause = m[3];
    const named = /^\{([\s\S]*)\}$/.exec(clause.trim());
    const allTyped =
      named !== null &&
      named[1].split(',').every((s) => s.trim() === '' || /^type\s/.test(s.trim())) &&
      named[1].trim() !== '';
    refs.push({ specifier: m[4], typeOnly: m[2] !== undefined || allTyped, line: lineAt(m.index) });
  }
  for (const m of code.matchAll(/\bimport\s*(?:\(\s*)?['"]([^'"]+)['"]/g)) {
    refs.push({ specifier: m[1], typeOnly: false, line: lineAt(m.index) });
  }
  return refs;
}

/** Every import that breaks the rule, as `file:line imports 'spec': why`. */
function violations(): string[] {
  const out: string[] = [];
  for (const file of SCANNED.flatMap(tsFiles)) {
    const from = stageOf(file);
    if (from === null) continue;
    for (const ref of importsOf(readFileSync(join(ROOT, file), 'utf8'))) {
      const where = `${file}:${ref.line} imports '${ref.specifier}'`;
      const isNode =
        ref.specifier.startsWith('node:') || builtinModules.includes(ref.specifier.split('/')[0]);
      if (isNode) {
        if (BROWSER_SAFE.includes(from)) out.push(`${where}: ${from}/ must run in a browser`);
        continue;
      }
      if (!ref.specifier.startsWith('.')) continue; // npm packages
      const target = normalize(relative(ROOT, join(ROOT, dirname(file), ref.specifier)));
      const to = stageOf(target.split('\\').join('/'));
      if (to === null) {
        out.push(`${where}: outside the stage folders`);
        continue;
      }
      if (ALLOWED[from].includes(to)) continue;
      if (from === 'runtime' || from === 'runtime/node') {
        if (ref.typeOnly && RUNTIME_TYPE_SOURCES.includes(to)) continue;
        if (target in RUNTIME_VALUE_IMPORTS) continue;
        out.push(`${where}: the runtime takes only types from ${to}/ (or a listed module)`);
        continue;
      }
      out.push(`${where}: ${from} may not import ${to} (a later stage)`);
    }
  }
  return out;
}

describe('stage layering', () => {
  it('reads multi-line, type-only and dynamic imports', () => {
    const refs = importsOf(
      [
        "import type { A } from '../a.ts';",
        "import {\n  type B,\n  type C,\n} from '../b.ts';",
        "import { type D, e } from '../d.ts';",
        "// import { f } from '../f.ts';",
        "export { g } from './g.ts';",
        "const h = await import('./h.ts');",
      ].join('\n'),
    );
    expect(refs.map((r) => [r.specifier, r.typeOnly])).toEqual([
      ['../a.ts', true],
      ['../b.ts', true],
      ['../d.ts', false],
      ['./g.ts', false],
      ['./h.ts', false],
    ]);
  });

  it('every import in grammar/, formats/, src/, codegen/ and runtime/ runs forward', () => {
    expect(violations()).toEqual([]);
  });
});
