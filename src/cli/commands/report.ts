/**
 * `bnlab report`: join every experiment run under runs/experiments into one page,
 * runs/experiments/report.html (each run's reading, key figures and plots, newest first).
 */
import { Command } from 'commander';
import { EXPERIMENTS_DIR, writeCombinedReport } from '../experiment-runs.js';

interface ReportFlags {
  dir: string;
  out?: string;
}

export function register(program: Command): Command {
  return program
    .command('report')
    .summary('join every experiment run into one page')
    .description(`Read every run under ${EXPERIMENTS_DIR} (folders with a results.json written by bnlab experiment) and write one page joining them: a table of the runs, then each run's summary, reading and plots.`)
    .option('--dir <dir>', 'folder holding the experiment runs', EXPERIMENTS_DIR)
    .option('--out <file>', 'the page to write (default: <dir>/report.html)')
    .addHelpText(
      'after',
      `
Examples:
  $ bnlab experiment convergence --quick && bnlab report
  $ bnlab report --dir runs/experiments --out report.html`,
    )
    .action(async (flags: ReportFlags) => {
      const written = await writeCombinedReport(flags.dir, flags.out);
      for (const s of written.skipped) console.error(`skipped ${s}`);
      if (written.runs === 0) console.log(`No experiment runs in ${flags.dir} yet (bnlab experiment NAME makes one); wrote an empty page.`);
      else console.log(`${written.runs} run${written.runs === 1 ? '' : 's'} joined.`);
      console.log(`Report: ${written.path}`);
    });
}
