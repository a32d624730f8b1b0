/**
 * How the commands write values into their output: paths and names quoted where a shell or a list would
 * misread them, and numbers (losses) compactly.
 */

/** `p` as one shell word: unchanged when it is plain, else in single quotes (so it can be pasted). */
export function shellQuote(p: string): string {
  return /^[\w@%+=:,./-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`;
}

/** A command line to paste into a shell. */
export function shellCommand(words: readonly string[]): string {
  return words.map(shellQuote).join(' ');
}

/**
 * A class name in a comma-separated list: as it is when that cannot be misread, else JSON-quoted (a name
 * holding a comma, a quote, a line break or blanks at its ends would run into its neighbours).
 */
export function listName(name: string): string {
  return /^[^,"\s]+(?: [^,"\s]+)*$/.test(name) ? name : JSON.stringify(name);
}

/** Class names as a list for a message: `a, b, "c, d"`. */
export function nameList(names: readonly string[]): string {
  return names.map(listName).join(', ');
}

/** A loss: 4 decimals in the usual range, else 4 significant digits with an exponent (9.644e+33, not 9.644258191162722e+33). */
export function formatLoss(loss: number): string {
  if (!Number.isFinite(loss)) return String(loss);
  const a = Math.abs(loss);
  return a !== 0 && (a >= 1e5 || a < 1e-4) ? loss.toExponential(3) : loss.toFixed(4);
}
