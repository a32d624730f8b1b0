// `npm run lab`: build the lab (npm run lab:build) and serve it on localhost with the cross-origin
// isolation headers; prints the URL. `--port N` (default 5173), `--no-isolation` to try the one-thread mode.
import { fileURLToPath } from 'node:url';
import { serveLab } from './lab-server.mjs';

const args = process.argv.slice(2);
const portArg = args.indexOf('--port');
const port = portArg >= 0 ? Number(args[portArg + 1]) : 5173;
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port must be a port number (0-65535), got ${args[portArg + 1]}`);
  process.exit(2);
}
const isolated = !args.includes('--no-isolation');
const dir = fileURLToPath(new URL('../dist-lab', import.meta.url));
try {
  const { url } = await serveLab({ dir, isolated, port, host: '127.0.0.1' });
  console.log(`bnlab lab: ${url}  (${isolated ? 'cross-origin isolated: two workers' : 'no isolation headers: one thread'}; Ctrl-C stops it)`);
} catch (e) {
  if (e.code === 'EADDRINUSE') console.error(`Port ${port} is in use: npm run lab -- --port ${port + 1}`);
  else console.error(e.message);
  process.exit(1);
}
