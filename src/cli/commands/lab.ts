/**
 * `bnlab lab [--port N] [--host H] [--no-isolation]`: serve the lab (prebuilt into the package) on this
 * machine and print its URL. The serving is src/lab-server; this only parses the options.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { serveLab } from '../../lab-server/index.js';
import { nonNegativeInt } from '../options.js';

interface LabFlags {
  port: number;
  host: string;
  isolation: boolean;
}

function port(value: string): number {
  const n = nonNegativeInt(value);
  if (n > 65535) throw new InvalidArgumentError(`Expected a port number from 0 to 65535 (0 = any free port), got "${value}".`);
  return n;
}

export function register(program: Command): Command {
  return program
    .command('lab')
    .summary('open the lab: watch batch norm work while two networks train, in the browser')
    .description('Serve the lab, the browser page where a network with batch norm and the same network without it train side by side, on localhost, and print its URL (open it in Chrome, Edge or Firefox; Ctrl-C stops the server). It is sent with the cross-origin isolation headers (COOP/COEP) so it can train on two threads; --no-isolation leaves them out, and the lab runs on one.')
    .addOption(new Option('--port <n>', 'the port to listen on (0 = any free port)').argParser(port).default(5173))
    .addOption(new Option('--host <address>', 'the address to listen on (0.0.0.0 = every interface: other machines can reach the lab)').default('127.0.0.1'))
    .option('--no-isolation', 'leave out the cross-origin isolation headers: the lab trains on one thread')
    .addHelpText(
      'after',
      `
Examples:
  $ bnlab lab
  $ bnlab lab --port 8080
  $ bnlab lab --no-isolation`,
    )
    .action(async (flags: LabFlags) => {
      const { url } = await serveLab({ port: flags.port, host: flags.host, isolated: flags.isolation });
      console.log(`bnlab lab: ${url}  (${flags.isolation ? 'cross-origin isolated: two workers' : 'no isolation headers: one thread'}; Ctrl-C stops it)`);
    });
}
