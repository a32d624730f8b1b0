/**
 * Warnings for silent mistakes (eval with never-updated running statistics, a Keras-style momentum).
 * Each is printed once per key; tests and the browser lab can route them elsewhere.
 */
export type WarningHandler = (message: string) => void;

let handler: WarningHandler = (message) => console.warn(`bnlab warning: ${message}`);
const seen = new Set<string>();

export function setWarningHandler(fn: WarningHandler): WarningHandler {
  const previous = handler;
  handler = fn;
  return previous;
}

/** Emit `message` unless a warning with the same key was already emitted. */
export function warnOnce(key: string, message: string): void {
  if (seen.has(key)) return;
  seen.add(key);
  handler(message);
}

/** Forget which warnings were shown (for tests). */
export function resetWarnings(): void {
  seen.clear();
}
