#!/usr/bin/env node
// The installed package's `strata` command: the built CLI, run by plain Node (no tsx). npm
// links it as node_modules/.bin/strata, a path main.ts's own entry check cannot recognise.
import { runCli } from './main.ts';

runCli();
