// `npm run lab`: build the lab (npm run lab:build), then serve it as `bnlab lab` does (the same server,
// src/lab-server) with the same options: --port N (default 5173), --host H, --no-isolation.
import { main } from '../dist/src/cli/main.js';

await main([process.argv[0], 'bnlab', 'lab', ...process.argv.slice(2)]);
