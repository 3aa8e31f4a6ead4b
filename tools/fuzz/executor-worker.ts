/** The worker thread that runs properties: a hung or exploding input can only take this down. */
import { parentPort } from 'node:worker_threads';
import { checkInput } from './properties.ts';
import type { FuzzInput } from './types.ts';

const port = parentPort;
if (!port) throw new Error('executor-worker.ts runs only as a worker thread');
port.on('message', (msg: { id: number; input: FuzzInput }) => {
  port.postMessage({ id: msg.id, outcome: checkInput(msg.input) });
});
port.postMessage({ ready: true });
