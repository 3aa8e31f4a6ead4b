/**
 * Runs inputs through the properties in a worker thread under a time budget (property 2): a
 * worker that overruns is terminated and replaced, and one that dies (out of heap) is reported
 * as that input's failure.
 */
import type { Worker } from 'node:worker_threads';
import { spawnTsWorker } from './spawn.ts';
import { INPUT_BUDGET_MS, type FuzzInput, type Outcome } from './types.ts';

const EXECUTOR = new URL('./executor-worker.ts', import.meta.url);

// Enough for every real spec; an input that needs more is a memory blow-up, and bounding it
// keeps 16 workers on one machine from starving each other.
const HEAP_MB = 768;
// Worker threads get a 4 MB stack by default, four times the CLI's main thread: with it, a
// parser recursion that overflows in `strata check` passes here. Match the main thread's.
const STACK_MB = 1;

interface Pending {
  kind: string;
  resolve: (o: Outcome) => void;
  timer: NodeJS.Timeout;
  started: number;
}

export class Sandbox {
  private worker: Worker | null = null;
  private ready: Promise<void> | null = null;
  private pending: Pending | null = null;
  private nextId = 0;

  constructor(private readonly budgetMs = INPUT_BUDGET_MS) {}

  private start(): Promise<void> {
    const w = spawnTsWorker(EXECUTOR, undefined, {
      maxOldGenerationSizeMb: HEAP_MB,
      stackSizeMb: STACK_MB,
    });
    this.worker = w;
    this.ready = new Promise((resolve, reject) => {
      const onReady = (m: { ready?: boolean }) => {
        if (!m.ready) return;
        w.off('message', onReady);
        resolve();
      };
      w.on('message', onReady);
      w.once('error', reject);
    });
    w.on('message', (m: { id?: number; outcome?: Outcome }) => {
      if (m.outcome && this.pending) this.settle(m.outcome);
    });
    w.on('error', (e: Error & { code?: string }) => {
      const oom = e.code === 'ERR_WORKER_OUT_OF_MEMORY' || /heap|memory/i.test(e.message);
      this.crash(
        oom ? 'out of memory' : `worker crashed: ${e.constructor.name}`,
        oom ? `exceeded the ${HEAP_MB} MB heap: ${e.message}` : e.message,
      );
    });
    w.on('exit', (code) => {
      if (this.worker === w) this.crash('worker exited', `exit code ${code}`);
    });
    return this.ready;
  }

  private settle(outcome: Outcome): void {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    clearTimeout(p.timer);
    p.resolve(outcome);
  }

  private crash(signature: string, reason: string): void {
    const p = this.pending;
    this.discard();
    if (p) {
      const failure = { signature: `${p.kind}: ${signature}`, reason, ms: Date.now() - p.started };
      this.settle0(p, { status: 'failure', ...failure });
    }
  }

  private settle0(p: Pending, outcome: Outcome): void {
    clearTimeout(p.timer);
    p.resolve(outcome);
  }

  private discard(): void {
    const w = this.worker;
    this.worker = null;
    this.ready = null;
    this.pending = null;
    if (w) void w.terminate();
  }

  /** The input's outcome; never rejects. */
  async run(input: FuzzInput): Promise<Outcome> {
    if (!this.worker) await this.start();
    else await this.ready;
    const w = this.worker!;
    const id = this.nextId++;
    return new Promise<Outcome>((resolve) => {
      const started = Date.now();
      const timer = setTimeout(() => {
        const p = this.pending;
        this.discard();
        if (p) {
          this.settle0(p, {
            status: 'failure',
            signature: `${input.kind}: timeout (over ${this.budgetMs} ms)`,
            reason: `no answer within ${this.budgetMs} ms`,
            ms: Date.now() - started,
          });
        }
      }, this.budgetMs);
      this.pending = { kind: input.kind, resolve, timer, started };
      w.postMessage({ id, input });
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }
}
