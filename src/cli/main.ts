#!/usr/bin/env node
/**
 * The `bnlab` command. Each subcommand lives in src/cli/commands/<name>.ts and exports
 * `register(program)`, which adds it to the program; adding a command is one line in COMMANDS.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { packageInfo } from './version.js';

/** Subcommands, in the order `bnlab --help` lists them. */
export const COMMANDS: readonly string[] = ['start', 'train', 'summary', 'predict', 'evaluate', 'export', 'import', 'recalibrate', 'experiment', 'report', 'lab'];

interface CommandModule {
  register(program: Command): Command;
}

/** The program with every subcommand registered (not yet parsed). */
export async function createProgram(): Promise<Command> {
  const program = new Command()
    .name('bnlab')
    .description('Train neural networks with batch normalization on MNIST or your own data, and see why it works.')
    .version(packageInfo().version, '-v, --version')
    // Set before adding commands: subcommands copy these settings when created.
    .showHelpAfterError('(add --help for usage and examples)')
    .showSuggestionAfterError()
    .addHelpText(
      'after',
      `
Examples:
  $ bnlab start                                    train the paper's MNIST network with and without BN
  $ bnlab train --model ioffe-mlp --bn --steps 10000 --batch 60
  $ bnlab summary --model ioffe-mlp
  $ bnlab train --help                             every training option`,
    );
  for (const name of COMMANDS) {
    const mod = (await import(`./commands/${name}.js`)) as Partial<CommandModule>;
    if (typeof mod.register !== 'function') throw new Error(`src/cli/commands/${name}: expected an exported register(program) function`);
    mod.register(program);
  }
  return program;
}

/** Parse `argv` and run the command; errors from commands become "error: ..." and exit code 1. */
export async function main(argv: string[] = process.argv): Promise<void> {
  const program = await createProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    // One style for every failure: "error: <message>", even when the message quotes another "Error: ...".
    console.error(`error: ${e.message.replace(/^(?:error|Error):\s*/, '')}`);
    if (process.env.BNLAB_DEBUG) console.error(e.stack);
    process.exitCode = 1;
  }
}

/** True when this file is the program node started, however it was reached (`node_modules/.bin` symlink, relative path). */
function isEntryPoint(): boolean {
  const started = process.argv[1];
  if (!started) return false;
  try {
    return realpathSync(started) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false; // the started path does not exist (e.g. node -e): not us
  }
}

if (isEntryPoint()) {
  await main();
}
