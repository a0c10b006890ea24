#!/usr/bin/env node
// The `gate` command. Each subcommand lives in its own module and registers itself here.
import { Command } from 'commander';
import { register as registerSim } from './sim.js';
import { register as registerRun } from './run.js';
import { register as registerBackoffice } from './backoffice.js';
import { register as registerBarrier } from './barrier.js';
import { register as registerDoctor } from './doctor.js';
import { register as registerPack } from './pack.js';
import { register as registerReader } from './reader.js';
import { register as registerSupervisor } from './supervisor.js';
import { register as registerStation } from './station.js';
import { register as registerReplay } from './replay.js';

const program = new Command();
program.name('gate').description('Metro fare-gate edge runtime: run a lane, simulate a station, bench-test hardware').version('0.1.0');

for (const register of [registerSim, registerRun, registerBarrier, registerDoctor, registerPack, registerReader, registerBackoffice, registerSupervisor, registerStation, registerReplay]) register(program);

await program.parseAsync(process.argv);
