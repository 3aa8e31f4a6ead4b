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
import { existsSync, readFileSync } from 'node:fs';
import {
  mkdir,
  open,
  readFile,
  rename,
  stat,
  symlink,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
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
    const partial = `${blob}.incomplete`;
    let have = Math.max(0, await sizeOf(partial));
    // A partial file longer than the blob cannot be a prefix of it.
    if (have > info.size) {
      await truncate(partial, 0);
      have = 0;
    }
    const progress = byteProgress(`${file}${have > 0 ? ' (resumed)' : ''}`, info.size, have);
    const fh = await open(partial, 'a');
    try {
      if (have < info.size) {
        const whole = await downloadFile({
          repo,
          path: file,
          revision: commit,
          hubUrl: hubUrl(),
          accessToken,
          downloadInfo: info,
          xet: false,
        });
        if (!whole) throw new UserError(`${label(name)}: the Hub has no ${file}`);
        // A slice from an offset is fetched with `Range: bytes=<offset>-`.
        const reader = (have > 0 ? whole.slice(have) : whole).stream().getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          // Written before the next chunk is read: what arrived is on disk if the link drops.
          await fh.write(value);
          have += value.byteLength;
          progress.update(have);
        }
      }
    } catch (e) {
      progress.end();
      const why = typeof e === 'string' ? e : (e as Error).message;
      throw new UserError(
        `downloading ${file} of ${label(name)} stopped at ${have} of ${info.size} bytes (${why}); ` +
          `run the command again to resume from there`,
      );
    } finally {
      await fh.close();
    }
    progress.end();
    if (have !== info.size)
      throw new UserError(
        `downloading ${file} of ${label(name)}: got ${have} bytes, the Hub said ${info.size}; run again to retry`,
      );
    await rename(partial, blob);
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
