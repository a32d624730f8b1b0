/**
 * The threads of a data-parallel group meeting in shared memory: a barrier, and an all-gather of small
 * f64 vectors (batch norm's per-channel statistics and sums) built on it. No messages: a postMessage
 * costs tens of microseconds, an atomic store and load a fraction of one, and a training step of the
 * paper's network meets about eight times.
 *
 * Layout from `base` (bytes), for `size` ranks and vectors of up to `capacity` doubles:
 *   [r·64]                 rank r's arrival count (i32), then how many ranks sleep waiting for it (i32); one cache line per rank
 *   [size·64]              abort flag (i32), [size·64 + 4] message length (i32), then the message (UTF-8)
 *   [size·64 + 1024 ...]   exchange slots: 2 phases × size ranks × capacity f64
 *
 * The barrier counts arrivals instead of resetting a counter: rank r stores its k-th arrival as k, and
 * waits until every other rank's count is at least k. Exchanges alternate between two phases of slots:
 * a rank that has passed barrier k and writes for exchange k+1 cannot touch the slots others may still
 * be reading from exchange k, and it cannot get further before they arrive at barrier k+1.
 */
import type { BatchNormSync } from '../nn/batchnorm.js';

const LINE = 64;
const MESSAGE_BYTES = 1024 - 8;

/** A rank gave up (an error in its step); the others stop waiting for it. */
export class GroupAbortedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GroupAbortedError';
  }
}

export interface SyncGroupOptions {
  /** How long a waiting rank spins before it sleeps, in µs (waking a sleeping thread costs 10-50 µs). */
  spinMicros: number;
  /** Whether this thread may block in Atomics.wait (not a browser's main thread): if not, it only spins. */
  canBlock: boolean;
}

export class SharedSyncGroup implements BatchNormSync {
  /** Bytes of shared memory a group needs. */
  static bytes(size: number, capacity: number): number {
    return size * LINE + 1024 + 2 * size * capacity * 8;
  }

  private readonly i32: Int32Array;
  private readonly arrivalIndex: number[];
  private readonly abortIndex: number;
  private readonly messageOffset: number;
  private readonly slots: Float64Array;
  private arrivals = 0;
  private phase = 0;
  /** Views of the exchange slots, by phase and vector length: made once, so exchanges allocate nothing. */
  private readonly views: Array<Map<number, Float64Array[]>> = [new Map(), new Map()];

  constructor(readonly buffer: ArrayBufferLike, readonly base: number, readonly rank: number, readonly size: number, readonly capacity: number, private readonly options: SyncGroupOptions) {
    if (base % LINE !== 0) throw new Error(`SharedSyncGroup: base ${base} must be a multiple of ${LINE}`);
    this.i32 = new Int32Array(buffer);
    this.arrivalIndex = Array.from({ length: size }, (_, r) => (base + r * LINE) >> 2);
    this.abortIndex = (base + size * LINE) >> 2;
    this.messageOffset = base + size * LINE + 8;
    this.slots = new Float64Array(buffer, base + size * LINE + 1024, 2 * size * capacity);
  }

  /** Zero the group's memory; done once, before any rank constructs its side of the group. */
  static reset(buffer: ArrayBufferLike, base: number, size: number, capacity: number): void {
    new Uint8Array(buffer, base, SharedSyncGroup.bytes(size, capacity)).fill(0);
  }

  /**
   * Wait until every rank has arrived here. Throws GroupAbortedError if a rank aborted the group.
   * `spinMicros` overrides the group's spin for this wait (the wait for the next step, whose gap is the
   * caller's work between steps, not a partner's share of the same work).
   */
  barrier(spinMicros = this.options.spinMicros): void {
    const epoch = ++this.arrivals;
    const mine = this.arrivalIndex[this.rank];
    Atomics.store(this.i32, mine, epoch);
    // Wake only ranks that went to sleep: a notify takes a lock, which costs microseconds on every barrier.
    if (Atomics.load(this.i32, mine + 1) > 0) Atomics.notify(this.i32, mine);
    for (let r = 0; r < this.size; r++) if (r !== this.rank) this.waitFor(this.arrivalIndex[r], epoch, spinMicros);
  }

  exchange(local: Float64Array): readonly Float64Array[] {
    const n = local.length;
    if (n > this.capacity) throw new Error(`SharedSyncGroup: a vector of ${n} values does not fit the group's ${this.capacity}`);
    let views = this.views[this.phase].get(n);
    if (!views) {
      views = Array.from({ length: this.size }, (_, r) => this.slots.subarray((this.phase * this.size + r) * this.capacity, (this.phase * this.size + r) * this.capacity + n));
      this.views[this.phase].set(n, views);
    }
    views[this.rank].set(local);
    this.phase ^= 1;
    this.barrier();
    return views;
  }

  /** Stop the group: every rank waiting in (or next entering) a barrier throws GroupAbortedError with `message`. */
  abort(message: string): void {
    const bytes = new TextEncoder().encode(message).subarray(0, MESSAGE_BYTES);
    new Uint8Array(this.buffer, this.messageOffset, bytes.length).set(bytes);
    Atomics.store(this.i32, this.abortIndex + 1, bytes.length);
    Atomics.store(this.i32, this.abortIndex, 1);
    for (const i of this.arrivalIndex) Atomics.notify(this.i32, i);
  }

  get aborted(): boolean {
    return Atomics.load(this.i32, this.abortIndex) !== 0;
  }

  /** The message the aborting rank left. */
  abortMessage(): string {
    const length = Atomics.load(this.i32, this.abortIndex + 1);
    // TextDecoder refuses views of shared memory: copy the bytes out first.
    return new TextDecoder().decode(new Uint8Array(this.buffer, this.messageOffset, length).slice());
  }

  private waitFor(index: number, epoch: number, spinMicros: number): void {
    const i32 = this.i32;
    let deadline = 0;
    let spins = 0;
    for (;;) {
      const seen = Atomics.load(i32, index);
      if (seen >= epoch) return;
      if (Atomics.load(i32, this.abortIndex) !== 0) throw new GroupAbortedError(this.abortMessage());
      if (!this.options.canBlock || (++spins & 255) !== 0) continue;
      const now = performance.now();
      if (deadline === 0) deadline = now + spinMicros / 1000;
      else if (now > deadline) {
        // Sleep until that rank arrives, waking now and then to check for an abort. The count of sleepers
        // is raised before the wait re-checks the value, so an arrival either is seen or sees the sleeper.
        Atomics.add(i32, index + 1, 1);
        Atomics.wait(i32, index, seen, 50);
        Atomics.sub(i32, index + 1, 1);
      }
    }
  }
}
