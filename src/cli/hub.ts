/**
 * Models named as the Hugging Face Hub names them (`ORG/NAME[@REVISION]`), found in the local
 * Hugging Face cache and completed from the Hub when files are missing.
 *
 * The cache is the one huggingface_hub (and so transformers) writes, so a model either side has
 * downloaded serves the other:
 *
 *   $HF_HUB_CACHE (else $HF_HOME/hub, else ~/.cache/huggingface/hub)
 *     models--ORG--NAME/
 *       refs/<revision>                  the commit a branch or tag pointed at when last resolved
 *       blobs/<etag>                     file contents, named by their ETag (sha256 for LFS files)
 *       snapshots/<commit>/<file>        relative symlinks into blobs/
 *
 * @huggingface/hub does the talking to the Hub (modelInfo resolves the revision to a commit and
 * lists the files; fileDownloadInfo gives a file's ETag, size and URL; downloadFile's Blob reads
 * it, as a Range request from an offset when a download resumes). Its own downloadFileToCacheDir
 * is not used: it names the snapshot after the file's last commit rather than the revision's,
 * writes no refs/, restarts interrupted downloads from zero and reports no progress.
 */
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import {
  mkdir,
  open,
  readFile,
  rename,
  stat,
  symlink,
  truncate,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { UserError } from './command.ts';
import { byteProgress } from './progress.ts';

export interface HubName {
  /** ORG/NAME */
  repo: string;
  /** A branch, tag or commit; 'main' when the name gave none. */
  revision: string;
}

const COMMIT = /^[0-9a-f]{40}$/;
/** What the Hub allows in an organisation or repository name. */
const PART = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** Endings that mark a file path, not a Hub name: a missing spec is 'no such file', not a download. */
const FILE_ENDING = /\.(strata|ya?ml|json|gguf|safetensors)$/i;

/**
 * `ORG/NAME` or `ORG/NAME@REVISION` as a Hub name, or null when the argument is not one. The
 * caller asks only about arguments that are not existing paths: a path that exists always wins.
 */
export function parseHubName(arg: string): HubName | null {
  const at = arg.indexOf('@');
  const repo = at < 0 ? arg : arg.slice(0, at);
  const revision = at < 0 ? 'main' : arg.slice(at + 1);
  const parts = repo.split('/');
  if (parts.length !== 2 || !parts.every((p) => PART.test(p) && !/^\.+$/.test(p))) return null;
  if (FILE_ENDING.test(repo) || revision === '' || /\s|\.\./.test(revision)) return null;
  return { repo, revision };
}

/** The client, loaded when a Hub name is used: every other command starts without it. */
const hubLib = () => import('@huggingface/hub');

/** The hub cache folder, by huggingface_hub's rules (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME). */
export async function hubCacheDir(): Promise<string> {
  return (await hubLib()).getHFHubCachePath();
}

async function repoFolder(repo: string): Promise<string> {
  const { getRepoFolderName } = await hubLib();
  return join(await hubCacheDir(), getRepoFolderName({ name: repo, type: 'model' }));
}

/** HF_TOKEN, else the token `huggingface-cli login` stored beside the cache. */
function hubToken(): string | undefined {
  const env = process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN;
  if (env) return env.trim();
  const home =
    process.env.HF_HOME ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface');
  const file = process.env.HF_TOKEN_PATH ?? join(home, 'token');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() || undefined : undefined;
}

function hubUrl(): string {
  return (process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
}

export function offlineFromEnv(): boolean {
  const v = (process.env.HF_HUB_OFFLINE ?? '').toLowerCase();
  return v === '1' || v === 'true' || v === 'yes' || v === 'on';
}

/** What a model needs: its config alone (import), or config, tokenizer and weights. */
export type HubNeed = 'config' | 'model';

/** Files fetched when the repository has them; config.json and the weights are required. */
const OPTIONAL_FILES = [
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'chat_template.jinja',
];
const INDEX = 'model.safetensors.index.json';

/** The shard files a safetensors index names. */
function shardsOf(indexPath: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (e) {
    throw new UserError(`${indexPath}: not valid JSON (${(e as Error).message})`);
  }
  const map = (parsed as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null)
    throw new UserError(`${indexPath}: no weight_map object`);
  return [...new Set(Object.values(map as Record<string, unknown>).map(String))].sort();
}

/** The files of a snapshot folder that a model of this need lacks (empty: complete). */
function missingFiles(dir: string, need: HubNeed): string[] {
  const missing: string[] = [];
  if (!existsSync(join(dir, 'config.json'))) missing.push('config.json');
  if (need === 'config') return missing;
  if (existsSync(join(dir, INDEX))) {
    for (const s of shardsOf(join(dir, INDEX))) if (!existsSync(join(dir, s))) missing.push(s);
  } else if (!existsSync(join(dir, 'model.safetensors'))) {
    missing.push(`model.safetensors (or ${INDEX} and its shards)`);
  }
  return missing;
}

/** The commit refs/<revision> records, or the revision itself when it is a commit. */
function cachedCommit(folder: string, revision: string): string | null {
  if (COMMIT.test(revision)) return revision;
  const ref = join(folder, 'refs', revision);
  return existsSync(ref) ? readFileSync(ref, 'utf8').trim() : null;
}

function label(name: HubName): string {
  return name.revision === 'main' ? name.repo : `${name.repo}@${name.revision}`;
}

/** The snapshot folder of a model in the cache, or an error naming what the cache lacks. */
async function fromCache(name: HubName, need: HubNeed, why: string): Promise<string> {
  const folder = await repoFolder(name.repo);
  const commit = cachedCommit(folder, name.revision);
  if (!commit || !existsSync(join(folder, 'snapshots', commit)))
    throw new UserError(
      `${label(name)} is not in the Hugging Face cache (${folder} has no ${commit ? `snapshots/${commit}` : `refs/${name.revision}`}), and ${why}`,
    );
  const dir = join(folder, 'snapshots', commit);
  const missing = missingFiles(dir, need);
  if (missing.length > 0)
    throw new UserError(
      `${label(name)} in the Hugging Face cache (${dir}) lacks ${missing.join(', ')}, and ${why}`,
    );
  return dir;
}

/** An ETag as huggingface_hub names blobs by it: no weak-validator prefix, no quotes. */
function blobName(etag: string): string {
  return etag.replace(/^W\//, '').replace(/^"|"$/g, '');
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return -1;
  }
}

/** Whether a process is alive (one we may not signal still counts). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs `f` holding a lock file (created exclusively, holding our pid): two strata processes
 * appending to one .incomplete file would interleave their bytes. A lock whose process is gone
 * is taken over. (huggingface_hub's own locks beside it are flock()s, which Node cannot take.)
 */
async function withLock(path: string, what: string, f: () => Promise<void>): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  for (let attempt = 0; ; attempt++) {
    try {
      await writeFile(path, String(process.pid), { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
      const pid = Number(readFileSync(path, 'utf8').trim());
      if (Number.isSafeInteger(pid) && pid > 0 && alive(pid))
        throw new UserError(
          `${what} is being downloaded by process ${pid} (lock ${path}); wait for it, or remove the lock if that process is not strata`,
        );
      await unlink(path);
    }
  }
  try {
    await f();
  } finally {
    await unlink(path).catch(() => {});
  }
}

/**
 * The bytes of one file into `blob`: appended to blob.incomplete (resuming from its length with a
 * Range request), checked for size and, for LFS files, sha256, then renamed into place.
 */
async function fetchBlob(
  blob: string,
  size: number,
  sha256: string | null,
  source: () => Promise<Blob>,
  what: string,
  file: string,
): Promise<void> {
  const partial = `${blob}.incomplete`;
  let have = Math.max(0, await sizeOf(partial));
  // A partial file longer than the blob cannot be a prefix of it.
  if (have > size) {
    await truncate(partial, 0);
    have = 0;
  }
  const hash = sha256 ? createHash('sha256') : null;
  if (hash && have > 0) for await (const chunk of createReadStream(partial)) hash.update(chunk);
  const progress = byteProgress(`${file}${have > 0 ? ' (resumed)' : ''}`, size, have);
  const fh = await open(partial, 'a');
  try {
    if (have < size) {
      const whole = await source();
      // A slice from an offset is fetched with `Range: bytes=<offset>-<size-1>`.
      const reader = (have > 0 ? whole.slice(have) : whole).stream().getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        // Written before the next chunk is read: what arrived is on disk if the link drops.
        await fh.write(value);
        hash?.update(value);
        have += value.byteLength;
        progress.update(have);
      }
    }
  } catch (e) {
    progress.end();
    const why = typeof e === 'string' ? e : (e as Error).message;
    throw new UserError(
      `downloading ${what} stopped at ${have} of ${size} bytes (${why}); ` +
        `run the command again to resume from there`,
    );
  } finally {
    await fh.close();
  }
  progress.end();
  if (have !== size)
    throw new UserError(
      `downloading ${what}: got ${have} bytes, the Hub said ${size}; run the command again to resume`,
    );
  const digest = hash?.digest('hex');
  if (sha256 && digest !== sha256) {
    await unlink(partial);
    throw new UserError(
      `downloading ${what}: its sha256 is ${digest}, not ${sha256} as the Hub said; the download is removed, run the command again`,
    );
  }
  await rename(partial, blob);
}

/**
 * One file into blobs/ and its snapshot link: skipped when the link or the blob is there already;
 * continued from where an earlier attempt stopped (blobs/<etag>.incomplete) with a Range request.
 */
async function downloadOne(
  name: HubName,
  commit: string,
  file: string,
  folder: string,
  accessToken: string | undefined,
  announce: () => void,
): Promise<void> {
  const pointer = join(folder, 'snapshots', commit, file);
  if (existsSync(pointer)) return;
  announce();
  const { downloadFile, fileDownloadInfo } = await hubLib();
  const repo = { type: 'model' as const, name: name.repo };
  const info = await fileDownloadInfo({
    repo,
    path: file,
    revision: commit,
    hubUrl: hubUrl(),
    accessToken,
  });
  if (!info) throw new UserError(`${label(name)}: the Hub has no ${file} at commit ${commit}`);
  const blob = join(folder, 'blobs', blobName(info.etag));
  await mkdir(dirname(blob), { recursive: true });
  if (!existsSync(blob)) {
    const lock = join(dirname(folder), '.locks', basename(folder), `${basename(blob)}.strata.lock`);
    await withLock(lock, `${file} of ${label(name)}`, async () => {
      // Another process may have finished it while this one waited for the lock.
      if (existsSync(blob)) return;
      const whole = async () => {
        const b = await downloadFile({
          repo,
          path: file,
          revision: commit,
          hubUrl: hubUrl(),
          accessToken,
          downloadInfo: info,
          xet: false,
        });
        if (!b) throw new UserError(`${label(name)}: the Hub has no ${file}`);
        return b;
      };
      // An LFS file's ETag is the sha256 of its bytes (a xet hash, also 64 hex digits, is not).
      const etag = blobName(info.etag);
      const sha256 = /^[0-9a-f]{64}$/.test(etag) && etag !== info.xet?.hash ? etag : null;
      await fetchBlob(blob, info.size, sha256, whole, `${file} of ${label(name)}`, file);
    });
  }
  await mkdir(dirname(pointer), { recursive: true });
  try {
    await symlink(relative(dirname(pointer), blob), pointer);
  } catch (e) {
    // Where links are not allowed (some Windows setups), huggingface_hub copies; so do we.
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
    await writeFile(pointer, await readFile(blob));
  }
}

/** What the Hub said, in words that say what to do about it. */
async function hubError(name: HubName, e: unknown): Promise<Error> {
  if (e instanceof (await hubLib()).HubApiError) {
    if (e.statusCode === 401 || e.statusCode === 403)
      return new UserError(
        `${label(name)}: the Hub refused access (${e.statusCode}): a gated or private model needs HF_TOKEN set to a token that has accepted its terms`,
      );
    if (e.statusCode === 404)
      return new UserError(`${label(name)}: no such model or revision on ${hubUrl()} (404)`);
    return new UserError(`${label(name)}: the Hub answered ${e.statusCode}: ${e.message}`);
  }
  if (e instanceof TypeError && e.message.includes('access token'))
    return new UserError(`HF_TOKEN: ${e.message}`);
  return e instanceof Error ? e : new Error(String(e));
}

/**
 * The local folder of a Hub model, downloading what the cache lacks unless offline. The folder
 * is a snapshot of the cache (symlinks into blobs/), read like any HuggingFace folder.
 */
export async function resolveHubModel(
  name: HubName,
  opts: { offline: boolean; need: HubNeed },
): Promise<string> {
  if (opts.offline)
    return fromCache(
      name,
      opts.need,
      'offline (--offline or HF_HUB_OFFLINE) nothing is downloaded',
    );
  const { modelInfo } = await hubLib();
  const folder = await repoFolder(name.repo);
  const accessToken = hubToken();
  let commit: string;
  let files: string[];
  try {
    const info = await modelInfo({
      name: name.repo,
      revision: name.revision,
      hubUrl: hubUrl(),
      accessToken,
      additionalFields: ['sha', 'filePaths'],
    });
    commit = String(info.sha);
    files = info.filePaths ?? [];
  } catch (e) {
    // Unreachable Hub: a complete cached copy still serves, as transformers would use it.
    if (e instanceof TypeError && /fetch failed/.test(e.message)) {
      const why = `${hubUrl()} cannot be reached (${(e.cause as Error | undefined)?.message ?? e.message})`;
      const dir = await fromCache(name, opts.need, why);
      process.stderr.write(`strata: ${why}; using the cached ${dir}\n`);
      return dir;
    }
    throw await hubError(name, e);
  }
  if (!COMMIT.test(commit))
    throw new UserError(`${label(name)}: the Hub gave no commit for revision ${name.revision}`);
  if (!files.includes('config.json'))
    throw new UserError(
      `${label(name)} has no config.json: not a transformers model strata can import`,
    );
  const want = ['config.json'];
  const dir = join(folder, 'snapshots', commit);
  let announced = false;
  const announce = () => {
    if (!announced)
      process.stderr.write(
        `strata: fetching ${label(name)} (commit ${commit.slice(0, 12)}) into ${folder}\n`,
      );
    announced = true;
  };
  try {
    if (opts.need === 'model') {
      want.push(...OPTIONAL_FILES.filter((f) => files.includes(f)));
      if (files.includes(INDEX)) {
        await downloadOne(name, commit, INDEX, folder, accessToken, announce);
        want.push(...shardsOf(join(dir, INDEX)));
      } else if (files.includes('model.safetensors')) want.push('model.safetensors');
      else
        throw new UserError(
          `${label(name)} has no model.safetensors or ${INDEX} (strata reads safetensors weights, not .bin or .pt)`,
        );
    }
    for (const f of want) await downloadOne(name, commit, f, folder, accessToken, announce);
  } catch (e) {
    throw await hubError(name, e);
  }
  if (!COMMIT.test(name.revision)) {
    const ref = join(folder, 'refs', name.revision);
    await mkdir(dirname(ref), { recursive: true });
    await writeFile(ref, commit);
  }
  return dir;
}

/** Whether `arg` names a Hub model rather than a path: it is not a path that exists, and parses. */
export function hubNameOf(arg: string): HubName | null {
  return existsSync(arg) ? null : parseHubName(arg);
}
