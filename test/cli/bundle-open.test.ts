/**
 * Opening a damaged or hostile bundle: files it names stay inside the folder, the manifest is
 * checked in full (its model as strictly as a spec), and no error quotes a file's contents.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cpSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openBundle } from '../../runtime/node/bundle-node.ts';
import { checkManifest } from '../../runtime/manifest-check.ts';
import { toManifest } from '../../codegen/bundle.ts';
import { compileModel } from '../../codegen/compile.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { BASELINE_CAPS } from '../../src/target.ts';
import { cli } from './run-cli.ts';

/** Stands in for a file outside the bundle that a manifest must not get printed. */
const SECRET = 'root:x:0:0:top-secret-line\nsecond line\n';

let dir: string;
let bundle: string;
let secretFile: string;
let n = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'strata-open-'));
  bundle = join(dir, 'good');
  secretFile = join(dir, 'secret.txt');
  writeFileSync(secretFile, SECRET);
  const r = await cli(
    'compile',
    'specs/tiny-llama.strata',
    '-o',
    bundle,
    '--target',
    'baseline',
    '--max-t',
    '8',
    '--capacity',
    '32',
  );
  expect(r.code, r.err).toBe(0);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A copy of the good bundle with its manifest edited by `edit` (which may return a new value). */
function damaged(edit: (m: Record<string, any>) => unknown = () => undefined): string {
  const to = join(dir, `copy${n++}`);
  cpSync(bundle, to, { recursive: true });
  const m = JSON.parse(readFileSync(join(to, 'manifest.json'), 'utf8'));
  const replaced = edit(m);
  writeFileSync(join(to, 'manifest.json'), JSON.stringify(replaced === undefined ? m : replaced));
  return to;
}

async function openError(b: string): Promise<string> {
  try {
    const src = await openBundle(b);
    await src.close?.();
  } catch (e) {
    const message = (e as Error).message;
    expect(message).not.toContain('top-secret');
    expect(message).not.toContain('root:x');
    return message;
  }
  throw new Error(`${b} opened`);
}

describe('files a manifest names stay inside the bundle', () => {
  it("refuses a kernel file with '..'", async () => {
    const b = damaged((m) => void (m.kernels[0].file = '../../../../../../../../etc/passwd'));
    expect(await openError(b)).toMatch(/manifest\.json.*kernels\[0\]\.file.*'\.\.'/s);
  });

  it('refuses an absolute kernel file', async () => {
    const b = damaged((m) => void (m.kernels[0].file = secretFile));
    expect(await openError(b)).toMatch(/kernels\[0\]\.file/);
  });

  it('refuses a shader that is a symlink to a file outside', async () => {
    const b = damaged();
    const shader = join(b, 'shaders', readdirSync(join(b, 'shaders'))[0]);
    unlinkSync(shader);
    symlinkSync(secretFile, shader);
    expect(await openError(b)).toMatch(/kernels\[\d+\]\.file.*outside the bundle folder/);
  });

  it('refuses a weights file outside the bundle', async () => {
    const b = damaged((m) => void (m.weightsFile = '../good/weights.safetensors'));
    expect(await openError(b)).toMatch(/manifest\.json.*weightsFile/s);
  });

  it('refuses a tokenizer file outside the bundle', async () => {
    const file = { kind: 'file', config: 'tokenizer_config.json', eos: [] } as const;
    const b = damaged((m) => void (m.tokenizer = { ...file, file: '../secret.txt' }));
    expect(await openError(b)).toMatch(/tokenizer\.file/);
    const c = damaged((m) => void (m.tokenizer = { ...file, file: 'x', config: '../secret.txt' }));
    expect(await openError(c)).toMatch(/tokenizer\.config/);
  });
});

describe('errors never quote file contents', () => {
  it('a manifest.json that is not JSON', async () => {
    const b = damaged();
    writeFileSync(join(b, 'manifest.json'), SECRET);
    expect(await openError(b)).toMatch(/manifest\.json: not valid JSON/);
  });

  it('a weights file whose header is not JSON', async () => {
    const b = damaged();
    const head = Buffer.alloc(8);
    head.writeBigUInt64LE(BigInt(SECRET.length));
    writeFileSync(join(b, 'weights.safetensors'), Buffer.concat([head, Buffer.from(SECRET)]));
    expect(await openError(b)).toMatch(/weights\.safetensors: header is not valid JSON/);
  });
});

describe('the manifest is checked in full', () => {
  it('a model vocab that disagrees with the embedding', async () => {
    const b = damaged((m) => void (m.model.vocab = 512));
    expect(await openError(b)).toMatch(
      /manifest\.json: inconsistent manifest:\n.*tensors\[0\]\.shape: embedding 'model\.embed_tokens\.weight' is \[256,64\], but model\.vocab × model\.dim is \[512, 64\]/,
    );
    // The issue's case: a vocab past any real model's is refused by the spec caps first.
    expect(await openError(damaged((m) => void (m.model.vocab = 1e9)))).toMatch(
      /manifest\.json: model\.vocab.*limit of 1048576/,
    );
  });

  it('the model with the rules a spec gets', async () => {
    expect(await openError(damaged((m) => void (m.model.dim = 'x')))).toMatch(
      /manifest\.json: model\.dim: must be an integer, got "x"/,
    );
    const heads = damaged((m) => void (m.model.layers[1].mixer.heads = 0));
    expect(await openError(heads)).toMatch(/model\.layers\[1\]\.mixer\.heads/);
  });

  it('a version that is a string', async () => {
    expect(await openError(damaged((m) => void (m.version = '1')))).toMatch(
      /manifest\.json: version must be an integer, got the string "1"/,
    );
  });

  it('a manifest of null, or an array', async () => {
    expect(await openError(damaged(() => null))).toMatch(
      /manifest\.json: must be a JSON object, got null/,
    );
    expect(await openError(damaged(() => []))).toMatch(/must be a JSON object, got an array/);
  });

  it('kernels, bindings, state and compile options against the schema', async () => {
    expect(await openError(damaged((m) => void delete m.kernels[2].bindings))).toMatch(
      /kernels\[2\]: missing property 'bindings'/,
    );
    expect(await openError(damaged((m) => void (m.kernels[0].workgroupSize = [0, 1, 1])))).toMatch(
      /kernels\[0\]\.workgroupSize\[0\]: must be >= 1, got 0/,
    );
    expect(await openError(damaged((m) => void (m.state[0].shape = [-1, 4])))).toMatch(
      /state\[0\]\.shape\[0\]/,
    );
    expect(await openError(damaged((m) => void (m.compile.capacity = 'lots')))).toMatch(
      /compile\.capacity: must be integer/,
    );
    expect(await openError(damaged((m) => void (m.tokenizer = { kind: 'sentencepiece' })))).toMatch(
      /tokenizer/,
    );
  });

  it('state buffers larger than the device could hold', async () => {
    const b = damaged((m) => void (m.state[0].shape = [1e6, 1e6]));
    expect(await openError(b)).toMatch(/state\[0\]\.shape: \[1000000,1000000\] is .* bytes, over/);
  });

  it("every dispatch's kernel and buffers exist", async () => {
    const kernel = damaged((m) => void (m.phases.decode.dispatches[0].kernel = 'nope'));
    expect(await openError(kernel)).toMatch(
      /phases\.decode\.dispatches\[0\]\.kernel: 'nope' is not in kernels/,
    );
    const param = damaged((m) => void (m.phases.prefill.dispatches[0].bind.table = 'param:ghost'));
    expect(await openError(param)).toMatch(
      /phases\.prefill\.dispatches\[0\]\.bind\.table: 'param:ghost' names no tensor/,
    );
    const slot = damaged((m) => void (m.phases.decode.dispatches[0].bind.out = 'slot:99'));
    expect(await openError(slot)).toMatch(/'slot:99' names no slot/);
  });

  it('every listed tensor is in the weights file with its shape', async () => {
    const b = damaged((m) => void (m.tensors[1].shape = [65]));
    expect(await openError(b)).toMatch(
      /weights\.safetensors: tensor 'model\.layers\.0\.input_layernorm\.weight' is stored as F32 \[64\], the manifest's tensors\[1\] \(f32 \[65\]\) needs F32 \[65\]/,
    );
  });

  it('every listed tensor is stored as its dtype says', async () => {
    const b = damaged((m) => void (m.tensors[1].dtype = 'q8'));
    expect(await openError(b)).toMatch(
      /tensor 'model\.layers\.0\.input_layernorm\.weight' is stored as F32 \[64\], the manifest's tensors\[1\] \(q8 \[64\]\) needs U8 \[68\]/,
    );
  });
});

describe('what the compiler writes passes the checks', () => {
  it.each(['tiny-llama', 'tiny-moe', 'tiny-hybrid', 'gemma-3-1b', 'zamba2-2.7b', 'llama-3.2-1b'])(
    '%s',
    (name) => {
      const c = compileModel(loadSpec(`specs/${name}.strata`), { caps: BASELINE_CAPS });
      expect(() => checkManifest(JSON.parse(JSON.stringify(toManifest(c))), name)).not.toThrow();
    },
  );
});
