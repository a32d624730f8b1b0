/**
 * The allocator for the WebAssembly backend's linear memory. The kernels never allocate: JavaScript
 * hands out blocks of the memory as Float32Array views (`allocate()` of the kernel interface), and a
 * kernel call passes their byte offsets. Blocks are 64-byte aligned (a cache line; f32x4 loads never
 * straddle one), kept first-fit in an address-ordered free list that merges neighbours.
 *
 * Ownership is explicit: a block belongs to whoever allocated it until they free it (`release()` of
 * the kernel interface; a module gives back an output buffer it replaces, `Module.dispose()` all of
 * its own), or until the whole heap is reset (the backend disposed). Nothing is freed when a view is
 * garbage-collected: subarrays, and views on other threads sharing the memory, do not keep their parent
 * array alive, so a collector-driven free could hand their bytes to someone else while they are in use.
 *
 * Growing a shared memory keeps every existing view valid; growing an ordinary one would detach them
 * all, so an unshared heap never grows: when it is full, `alloc` returns -1 and the backend falls back
 * to ordinary arrays.
 */

const ALIGN = 64;
const PAGE = 65536;

export class WasmHeap {
  /** Every ArrayBuffer this memory has had (growing a shared memory yields a new object for the same bytes). */
  readonly buffers = new Set<ArrayBufferLike>();
  /** The current `memory.buffer`. */
  buffer: ArrayBufferLike;
  private freeStart: number[] = [];
  private freeSize: number[] = [];
  private readonly sizes = new Map<number, number>();
  private end: number;
  private liveBytes = 0;
  private readonly base: number;

  /**
   * @param memory the backend's memory
   * @param base first usable byte (below it: what the backend reserved at start-up)
   * @param growable whether the memory may grow (shared memories only)
   * @param maxBytes the memory's maximum size (or the end of the region this heap may use)
   */
  constructor(readonly memory: WebAssembly.Memory, base: number, readonly growable: boolean, readonly maxBytes: number) {
    this.base = this.end = alignUp(base);
    this.buffer = memory.buffer;
    this.buffers.add(this.buffer);
  }

  /** Bytes handed out and not yet freed. */
  get allocatedBytes(): number {
    return this.liveBytes;
  }

  /** The memory's size now. */
  get memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  /** A 64-byte aligned block of `bytes` bytes (not zeroed), or -1 when the memory cannot hold it. */
  alloc(bytes: number): number {
    const size = alignUp(Math.max(bytes, 1));
    for (let i = 0; i < this.freeStart.length; i++) {
      if (this.freeSize[i] < size) continue;
      const ptr = this.freeStart[i];
      if (this.freeSize[i] === size) {
        this.freeStart.splice(i, 1);
        this.freeSize.splice(i, 1);
      } else {
        this.freeStart[i] += size;
        this.freeSize[i] -= size;
      }
      return this.taken(ptr, size);
    }
    if (!this.reserve(this.end + size)) return -1;
    const ptr = this.end;
    this.end += size;
    return this.taken(ptr, size);
  }

  /**
   * Return the block at `ptr` to the free list. With `bytes`, only when that is the block's size (a
   * subarray that starts where a block does is not the block). An unknown pointer is ignored (not
   * handed out here, or freed already).
   */
  free(ptr: number, bytes?: number): void {
    const size = this.sizes.get(ptr);
    if (size === undefined) return;
    if (bytes !== undefined && alignUp(Math.max(bytes, 1)) !== size) return;
    this.sizes.delete(ptr);
    this.liveBytes -= size;
    // Insert in address order, merging with the neighbours it touches.
    let i = 0;
    while (i < this.freeStart.length && this.freeStart[i] < ptr) i++;
    let start = ptr;
    let len = size;
    if (i > 0 && this.freeStart[i - 1] + this.freeSize[i - 1] === start) {
      i--;
      start = this.freeStart[i];
      len += this.freeSize[i];
      this.freeStart.splice(i, 1);
      this.freeSize.splice(i, 1);
    }
    if (i < this.freeStart.length && start + len === this.freeStart[i]) {
      len += this.freeSize[i];
      this.freeStart.splice(i, 1);
      this.freeSize.splice(i, 1);
    }
    if (start + len === this.end) {
      this.end = start; // the block was the last one: give it back to the unallocated tail
      return;
    }
    this.freeStart.splice(i, 0, start);
    this.freeSize.splice(i, 0, len);
  }

  /** Free every block at once (the backend is disposed). */
  reset(): void {
    this.sizes.clear();
    this.freeStart = [];
    this.freeSize = [];
    this.liveBytes = 0;
    this.end = this.base;
  }

  /** The memory's buffer now, remembered among the ones it has had (another thread may have grown it). */
  current(): ArrayBufferLike {
    const b = this.memory.buffer;
    if (b !== this.buffer && b.byteLength >= this.buffer.byteLength) this.buffer = b;
    this.buffers.add(b);
    return b;
  }

  private taken(ptr: number, size: number): number {
    this.sizes.set(ptr, size);
    this.liveBytes += size;
    return ptr;
  }

  /** Make the memory at least `bytes` long; false when it cannot grow that far. */
  private reserve(bytes: number): boolean {
    if (bytes > this.maxBytes) return false;
    const have = this.memory.buffer.byteLength;
    if (bytes <= have) return true;
    if (!this.growable) return false;
    // Grow by at least a quarter of the current size, so a model's many small buffers do not grow it page by page.
    const want = Math.min(this.maxBytes, Math.max(bytes, have + (have >> 2)));
    try {
      this.memory.grow(Math.ceil((want - have) / PAGE));
    } catch {
      return false;
    }
    this.buffer = this.memory.buffer;
    this.buffers.add(this.buffer);
    return true;
  }
}

function alignUp(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}
