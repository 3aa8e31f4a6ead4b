/**
 * Models by Hub name, against a real HTTP server on 127.0.0.1 that serves a fixture repository
 * in the Hub's URL layout (the llama fixture with the Unigram test tokenizer): the real
 * @huggingface/hub client, our cache writer and the CLI, nothing mocked. It downloads into a
 * temporary Hugging Face cache, resumes a download cut short with a Range request, runs again
 * with --offline, and names what an offline cache lacks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { cli } from './run-cli.ts';
import { hubNameOf, parseHubName } from '../../src/cli/hub.ts';

const REPO = 'tiny-org/tiny-llama';
const COMMIT = '0123456789abcdef0123456789abcdef01234567';
const TOKEN = 'hf_test_token';

const FILES: Record<string, Buffer> = {
  'config.json': readFileSync('test/fixtures/hf/llama/config.json'),
  'model.safetensors': readFileSync('test/fixtures/hf/llama/model.safetensors'),
  'tokenizer.json': readFileSync('test/fixtures/tokenizers/unigram/tokenizer.json'),
  'tokenizer_config.json': readFileSync('test/fixtures/tokenizers/unigram/tokenizer_config.json'),
  // Listed by the Hub but never fetched: strata reads safetensors only.
  'README.md': Buffer.from('# tiny llama\n'),
};
/** A sharded checkpoint: an index naming its one shard (every tensor of the llama fixture). */
const SHARD = 'model-00001-of-00001.safetensors';
const SHARDED: Record<string, Buffer> = {
  'config.json': FILES['config.json'],
  [SHARD]: FILES['model.safetensors'],
  'model.safetensors.index.json': Buffer.from(
    JSON.stringify({
      metadata: {},
      weight_map: Object.fromEntries(
        Object.keys(
          JSON.parse(
            FILES['model.safetensors']
              .subarray(8, 8 + Number(FILES['model.safetensors'].readBigUInt64LE(0)))
              .toString(),
          ),
        )
          .filter((k) => k !== '__metadata__')
          .map((k) => [k, SHARD]),
      ),
    }),
  ),
};
const REPOS: Record<string, Record<string, Buffer>> = {
  [REPO]: FILES,
  'tiny-org/sharded': SHARDED,
};
/** As the Hub does: LFS files by their sha256, others by a git-style sha1. Quoted, as sent. */
const etagOf = (f: string, files = FILES) =>
  f.endsWith('.safetensors')
    ? createHash('sha256').update(files[f]).digest('hex')
    : createHash('sha1').update(files[f]).digest('hex');

interface Logged {
  url: string;
  range: string | undefined;
}

let server: Server;
let root: string;
const log: Logged[] = [];
/** Files whose next full download is cut off after half its bytes. */
const cut = new Set<string>();
/** Files whose next full download arrives with a byte changed. */
const corrupt = new Set<string>();

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  log.push({ url: url.pathname, range: req.headers.range });
  if (req.headers.authorization !== `Bearer ${TOKEN}`) {
    // A gated model: the Hub answers 401 without a token that may read it.
    res.writeHead(401, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: 'Access to model tiny-org/tiny-llama is restricted.' }));
    return;
  }
  const api = /^\/api\/models\/(.+)\/revision\/([^/]+)$/.exec(url.pathname);
  if (api) {
    const files = REPOS[api[1]];
    if (!files || !['main', COMMIT].includes(decodeURIComponent(api[2]))) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: 'Repository not found' }));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(
      JSON.stringify({
        _id: 'fixture',
        id: api[1],
        sha: COMMIT,
        private: false,
        gated: 'manual',
        downloads: 0,
        likes: 0,
        lastModified: '2026-01-01T00:00:00.000Z',
        siblings: Object.keys(files).map((rfilename) => ({ rfilename })),
      }),
    );
    return;
  }
  const file = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
  const files = file ? REPOS[file[1]] : undefined;
  const body = file && files && [COMMIT, 'main'].includes(file[2]) ? files[file[3]] : undefined;
  if (!file || !body) {
    res.writeHead(404, { 'X-Error-Code': 'EntryNotFound' });
    res.end();
    return;
  }
  const headers = {
    ETag: `"${etagOf(file[3], files)}"`,
    'X-Repo-Commit': COMMIT,
    'Accept-Ranges': 'bytes',
    'Content-Type': 'application/octet-stream',
  };
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (range) {
    const start = Number(range[1]);
    const end = range[2] ? Math.min(Number(range[2]), body.length - 1) : body.length - 1;
    res.writeHead(206, {
      ...headers,
      'Content-Range': `bytes ${start}-${end}/${body.length}`,
      'Content-Length': end - start + 1,
    });
    res.end(body.subarray(start, end + 1));
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Length': body.length });
  if (corrupt.delete(file[3])) {
    // One byte flipped on the way: the size is right, the sha256 is not.
    const bad = Buffer.from(body);
    bad[bad.length >> 1] ^= 0xff;
    res.end(bad);
    return;
  }
  if (cut.delete(file[3])) {
    // The connection drops mid-file: the client has half the bytes and an error.
    res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.destroy(), 50));
    return;
  }
  res.end(body);
}

const saved: Record<string, string | undefined> = {};
function setEnv(k: string, v: string | undefined): void {
  if (!(k in saved)) saved[k] = process.env[k];
  if (v === undefined) delete process.env[k];
  else process.env[k] = v;
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'strata-hub-'));
  server = createServer(handle);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  setEnv('HF_ENDPOINT', `http://127.0.0.1:${port}`);
  setEnv('HF_HUB_CACHE', join(root, 'hub'));
  setEnv('HF_TOKEN', TOKEN);
  setEnv('HF_HUB_OFFLINE', undefined);
});

afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await new Promise((done) => server.close(done));
  rmSync(root, { recursive: true, force: true });
});

const storage = () => join(root, 'hub', 'models--tiny-org--tiny-llama');
const snapshot = () => join(storage(), 'snapshots', COMMIT);

describe('Hub names', () => {
  it('tells ORG/NAME[@REV] from a path; a path that exists wins', () => {
    expect(parseHubName('Qwen/Qwen3-0.6B')).toEqual({ repo: 'Qwen/Qwen3-0.6B', revision: 'main' });
    expect(parseHubName('a/b@v1.0')).toEqual({ repo: 'a/b', revision: 'v1.0' });
    for (const notHub of ['specs/x.strata', 'a/b/c', 'model', './a', 'a/config.json', 'a/b@'])
      expect(parseHubName(notHub), notHub).toBeNull();
    expect(hubNameOf('test/fixtures')).toBeNull();
  });
});

describe('a model by Hub name', () => {
  it('without a token, a gated model says to set HF_TOKEN', async () => {
    setEnv('HF_TOKEN', undefined);
    try {
      const r = await cli('import', REPO);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/HF_TOKEN/);
    } finally {
      process.env.HF_TOKEN = TOKEN;
    }
  });

  it('downloads into the HF cache, and resumes a download cut short with a Range request', async () => {
    cut.add('model.safetensors');
    const out = join(root, 'bundle');
    const first = await cli('compile', REPO, '-o', out, '--target', 'baseline');
    expect(first.code).toBe(1);
    expect(first.err).toMatch(
      /model\.safetensors.*stopped at \d+ of 429408 bytes.*run the command again to resume/s,
    );
    const blob = join(storage(), 'blobs', etagOf('model.safetensors'));
    const partial = statSync(`${blob}.incomplete`).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(FILES['model.safetensors'].length);

    log.length = 0;
    const second = await cli('compile', REPO, '-o', out, '--target', 'baseline');
    expect(second.code, second.err).toBe(0);
    // The files already in the cache are not fetched again; the weights continue where they stopped.
    const weights = log.filter(
      (l) => l.url.endsWith('/model.safetensors') && l.range !== 'bytes=0-0',
    );
    expect(weights).toEqual([
      {
        url: `/${REPO}/resolve/${COMMIT}/model.safetensors`,
        range: `bytes=${partial}-${FILES['model.safetensors'].length - 1}`,
      },
    ]);
    expect(log.some((l) => l.url.endsWith('/config.json') && l.range !== 'bytes=0-0')).toBe(false);
    expect(second.err).toMatch(/model\.safetensors \(resumed\): done/);

    // huggingface_hub's layout: refs/main, blobs named by ETag, relative snapshot links.
    expect(readFileSync(join(storage(), 'refs', 'main'), 'utf8')).toBe(COMMIT);
    const link = join(snapshot(), 'model.safetensors');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe(join('..', '..', 'blobs', etagOf('model.safetensors')));
    expect(readFileSync(link).equals(FILES['model.safetensors'])).toBe(true);
    expect(existsSync(`${blob}.incomplete`)).toBe(false);
    expect(existsSync(join(snapshot(), 'README.md'))).toBe(false);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    expect(manifest.tokenizer).toMatchObject({ kind: 'file', file: 'tokenizer.json' });
  });

  it('runs from the cache with --offline or HF_HUB_OFFLINE=1, asking the server nothing', async () => {
    log.length = 0;
    const r = await cli(
      'run',
      REPO,
      '--offline',
      '--prompt',
      'the quick fox',
      '--max-tokens',
      '4',
      '--capacity',
      '64',
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out.length).toBeGreaterThan(0);
    // Time to first token and the rate after it go to stderr; stdout is the text.
    expect(r.err).toMatch(
      /first token after \d+ ms \(prompt of \d+ tokens\), then [\d.]+ tokens\/s/,
    );
    expect(r.out).not.toMatch(/tokens\/s/);
    setEnv('HF_HUB_OFFLINE', '1');
    try {
      const i = await cli('import', REPO);
      expect(i.code, i.err).toBe(0);
      expect(i.out).toMatch(/model "tiny-llama"/);
      const named = await cli('import', REPO, '--name', 'my-llama');
      expect(named.out).toMatch(/model "my-llama"/);
    } finally {
      delete process.env.HF_HUB_OFFLINE;
    }
    expect(log).toEqual([]);
  });

  it('with the Hub unreachable, a complete cached model is used, with a note', async () => {
    const endpoint = process.env.HF_ENDPOINT;
    process.env.HF_ENDPOINT = 'http://127.0.0.1:1';
    try {
      const r = await cli('import', REPO);
      expect(r.code, r.err).toBe(0);
      expect(r.err).toMatch(/127\.0\.0\.1:1 cannot be reached .*; using the cached /);
    } finally {
      process.env.HF_ENDPOINT = endpoint;
    }
  });

  it('inspect fetches the config alone, and names the model NAME', async () => {
    log.length = 0;
    const r = await cli('inspect', 'tiny-org/sharded', '--target', 'baseline');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^model sharded: /);
    const fetched = log.filter((l) => l.url.includes('/resolve/') && l.range !== 'bytes=0-0');
    expect(fetched.map((l) => l.url)).toEqual([`/tiny-org/sharded/resolve/${COMMIT}/config.json`]);
  });

  it('downloads every shard a safetensors index names, checking sha256 and a live lock', async () => {
    const storage = join(root, 'hub', 'models--tiny-org--sharded');
    const compile = (...extra: string[]) =>
      cli(
        'compile',
        'tiny-org/sharded',
        '-o',
        join(root, 'sharded.bundle'),
        '--target',
        'baseline',
        ...extra,
      );
    // Another live process holds the index's lock: refused, naming it, nothing written.
    const lock = join(root, 'hub', '.locks', 'models--tiny-org--sharded');
    mkdirSync(lock, { recursive: true });
    const lockFile = join(lock, `${etagOf('model.safetensors.index.json', SHARDED)}.strata.lock`);
    writeFileSync(lockFile, String(process.pid));
    const locked = await compile();
    expect(locked.err).toMatch(
      /model\.safetensors\.index\.json of tiny-org\/sharded is being downloaded by process \d+/,
    );
    // A lock whose process is gone is taken over.
    writeFileSync(lockFile, '999999999');
    corrupt.add(SHARD);
    const bad = await compile();
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(
      /its sha256 is [0-9a-f]{64}, not [0-9a-f]{64} as the Hub said; the download is removed/,
    );
    expect(existsSync(join(storage, 'blobs', `${etagOf(SHARD, SHARDED)}.incomplete`))).toBe(false);
    expect(existsSync(lockFile)).toBe(false);
    const r = await compile();
    expect(r.code, r.err).toBe(0);
    const dir = join(storage, 'snapshots', COMMIT);
    expect(readFileSync(join(dir, SHARD)).equals(FILES['model.safetensors'])).toBe(true);
    unlinkSync(join(dir, SHARD));
    const offline = await compile('--offline');
    expect(offline.err).toMatch(new RegExp(`lacks ${SHARD}`));
  });

  it('offline, names what the cache lacks', async () => {
    const out = join(root, 'offline.bundle');
    unlinkSync(join(snapshot(), 'model.safetensors'));
    const r = await cli('compile', REPO, '-o', out, '--offline', '--target', 'baseline');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /tiny-org\/tiny-llama in the Hugging Face cache .* lacks model\.safetensors/,
    );
    expect(r.err).toMatch(/offline/);
    const other = await cli('inspect', 'tiny-org/other', '--offline', '--target', 'baseline');
    expect(other.code).toBe(1);
    expect(other.err).toMatch(/tiny-org\/other is not in the Hugging Face cache .*refs\/main/);
    // Online again, the missing link is restored from the blob already there: no download.
    log.length = 0;
    const again = await cli('compile', REPO, '-o', out, '--target', 'baseline');
    expect(again.code, again.err).toBe(0);
    expect(log.filter((l) => l.range !== 'bytes=0-0' && l.url.includes('/resolve/'))).toEqual([]);
  });

  it('an unknown model or revision is a 404 that says so', async () => {
    const r = await cli('import', `${REPO}@nope`);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/tiny-org\/tiny-llama@nope: no such model or revision/);
  });
});

/** Python's huggingface_hub, where this machine has it: the client whose cache strata shares. */
const hasPythonHub =
  spawnSync('python3', ['-c', 'import huggingface_hub'], { stdio: 'ignore' }).status === 0;

describe.skipIf(!hasPythonHub)(
  'one cache with Python huggingface_hub (skipped where it is not installed)',
  () => {
    // Asynchronous: the server answering it runs in this process.
    const py = async (cache: string, code: string): Promise<string> =>
      (
        await promisify(execFile)('python3', ['-c', code], {
          env: {
            ...process.env,
            HF_HUB_CACHE: cache,
            HF_HUB_DISABLE_PROGRESS_BARS: '1',
            HF_HUB_DISABLE_TELEMETRY: '1',
          },
          encoding: 'utf8',
        })
      ).stdout.trim();

    it('strata reads offline what huggingface_hub downloaded', async () => {
      const cache = join(root, 'py-cache');
      await py(
        cache,
        // hf_hub_download file by file, as transformers' from_pretrained fetches them.
        `from huggingface_hub import hf_hub_download\nfor f in ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']: hf_hub_download('${REPO}', f)`,
      );
      const saved = process.env.HF_HUB_CACHE;
      process.env.HF_HUB_CACHE = cache;
      try {
        const r = await cli('inspect', REPO, '--offline', '--target', 'baseline');
        expect(r.code, r.err).toBe(0);
        expect(r.out).toMatch(/parameters/);
      } finally {
        process.env.HF_HUB_CACHE = saved;
      }
    });

    it('huggingface_hub finds offline what strata downloaded, and its cache scan sees no damage', async () => {
      const cache = join(root, 'hub');
      const found = await py(
        cache,
        `from huggingface_hub import hf_hub_download\nprint(hf_hub_download('${REPO}', 'tokenizer.json', local_files_only=True))`,
      );
      expect(readFileSync(found).equals(FILES['tokenizer.json'])).toBe(true);
      const scan = JSON.parse(
        await py(
          cache,
          `import json\nfrom huggingface_hub import scan_cache_dir\ni = scan_cache_dir()\nr = [x for x in i.repos if x.repo_id == '${REPO}'][0]\nprint(json.dumps({"warnings": [str(w) for w in i.warnings], "refs": sorted(str(k) for k in r.refs), "files": sorted(f.file_name for rev in r.revisions for f in rev.files)}))`,
        ),
      ) as { warnings: string[]; refs: string[]; files: string[] };
      expect(scan.warnings).toEqual([]);
      expect(scan.refs).toEqual(['main']);
      expect(scan.files).toEqual([
        'config.json',
        'model.safetensors',
        'tokenizer.json',
        'tokenizer_config.json',
      ]);
    });
  },
);
