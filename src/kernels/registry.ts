/**
 * The backend registry. A backend is a folder under src/kernels/ whose index registers a provider by
 * name (backends.ts holds the one line per backend); everything else asks for a name the user gave
 * ('auto' by default) or for capabilities (`Kernels.capabilities`, `Kernels.sharing`), never for a
 * particular backend.
 */
import type { BackendAttachment, Kernels } from './kernels.js';
import { referenceKernels } from './reference.js';

/** Options every backend understands; a backend documents its own on top (e.g. WasmBackendOptions). */
export interface BackendOptions {
  /** Threads a kernel call may be split across, the calling one included (default 1). */
  threads?: number;
  readonly [option: string]: unknown;
}

/** What a backend folder registers. */
export interface BackendProvider {
  /** The name `--backend NAME` and `initBackend(NAME)` take. */
  readonly name: string;
  /** One line for `--help` ("WebAssembly SIMD (relaxed SIMD where the engine has it)"). */
  readonly description: string;
  /** 'auto' takes the available provider with the highest priority (the reference 'ts' is 0). */
  readonly priority: number;
  /** Whether it can run here: feature detection only (no workers started, nothing compiled for keeps). */
  available(): Promise<boolean>;
  /** A new instance. Async: a backend may compile code or start workers first. */
  create(options?: BackendOptions): Promise<Kernels>;
  /** On a worker: an instance on the memory an `attachment` describes (backends with `sharing` only). */
  attach?(attachment: BackendAttachment): Promise<Kernels>;
}

const providers = new Map<string, BackendProvider>();
/** Instances by name: the reference, and the ones `initBackend` created or `registerBackend` was given. */
const instances = new Map<string, Kernels>([[referenceKernels.name, referenceKernels]]);
let active: Kernels = referenceKernels;

providers.set('ts', {
  name: 'ts',
  description: 'the reference TypeScript kernels',
  priority: 0,
  available: async () => true,
  create: async () => referenceKernels,
});

/** Register a backend folder's provider (backends.ts does it for the built-in ones; call it for your own). */
export function registerBackendProvider(provider: BackendProvider): void {
  if (provider.name === 'auto') throw new Error('registerBackendProvider: "auto" is not a backend name (initBackend("auto") picks one)');
  providers.set(provider.name, provider);
}

/** The registered providers, most preferred first. */
export function backendProviders(): BackendProvider[] {
  return [...providers.values()].sort((a, b) => b.priority - a.priority);
}

/** Make a backend instance available by name (for `setBackend`), e.g. one created with custom options. */
export function registerBackend(kernels: Kernels): void {
  instances.set(kernels.name, kernels);
}

/** Names `initBackend` and `setBackend` know: every provider and every registered instance. */
export function availableBackends(): string[] {
  return [...new Set([...backendProviders().map((p) => p.name), ...instances.keys()])];
}

/** Choose the backend modules use from now on. Modules built earlier keep the one they were built with. */
export function setBackend(name: string): Kernels {
  const k = instances.get(name);
  if (!k && providers.has(name)) throw new Error(`The "${name}" backend must be created first: await initBackend('${name}') (it may compile code or start workers, which is asynchronous).`);
  if (!k) throw new Error(`Unknown backend "${name}". Available: ${availableBackends().join(', ')}`);
  active = k;
  return k;
}

export function getBackend(): Kernels {
  return active;
}

/** Backend names `initBackend` accepts: 'auto', 'ts', or any registered backend's name ('wasm'). */
export type BackendChoice = 'auto' | 'ts' | (string & {});

/**
 * Create a backend if needed, register it and make it the active one (what `getBackend()` returns and
 * new modules use). Async because a backend may compile its code (and start its workers) first; every
 * kernel call after that is synchronous.
 *
 * 'auto' takes the most preferred backend that is available here and starts (WebAssembly SIMD where
 * the engine has it), else the reference 'ts'. A backend created earlier is reused unless options are given.
 *
 * ```ts
 * await initBackend('wasm', { threads: 2 });
 * const model = buildPreset('ioffe-mlp'); // its buffers live in the backend's memory
 * ```
 */
export async function initBackend(name: BackendChoice = 'auto', options?: BackendOptions): Promise<Kernels> {
  if (name === 'auto') {
    for (const provider of backendProviders()) {
      try {
        if (await provider.available()) return await init(provider, options);
      } catch {
        // not usable here after all: try the next one
      }
    }
    return setBackend('ts');
  }
  const provider = providers.get(name);
  if (!provider) return setBackend(name); // a registered instance, or the error listing what exists
  return init(provider, options);
}

async function init(provider: BackendProvider, options: BackendOptions | undefined): Promise<Kernels> {
  const existing = instances.get(provider.name);
  if (existing && !options) return setBackend(provider.name);
  const created = await provider.create(options);
  if (existing && existing !== created) (existing as { close?(): void }).close?.();
  registerBackend(created);
  return setBackend(created.name);
}

/**
 * On a worker thread: the backend a `SharedKernelMemory.attachment` describes, on the same memory, made
 * the active one there (so models built on the worker use it).
 */
export async function attachBackend(attachment: BackendAttachment): Promise<Kernels> {
  const provider = providers.get(attachment.backend);
  if (!provider?.attach) throw new Error(`attachBackend: no registered backend "${attachment.backend}" can attach to shared memory (registered: ${availableBackends().join(', ')})`);
  const kernels = await provider.attach(attachment);
  registerBackend(kernels);
  return setBackend(kernels.name);
}
