// A first-in first-out queue on a ring that grows by doubling: O(1) push and shift, no splicing.
//
// A taken slot is cleared at once. Keeping consumed items reachable (an array with a moving head,
// compacted now and then) made every released output survive young-generation GCs and be promoted
// with the response it closes over: longer scavenges and more old-space marking on every request.

export class Fifo<T> {
  private slots: Array<T | undefined>;
  private head = 0;
  private size = 0;

  constructor(initialCapacity = 64) {
    if (!Number.isSafeInteger(initialCapacity) || initialCapacity < 1) throw new RangeError(`Fifo: initial capacity must be a positive integer, got ${initialCapacity}`);
    let capacity = 1;
    while (capacity < initialCapacity) capacity *= 2;
    this.slots = new Array<T | undefined>(capacity);
  }

  get length(): number {
    return this.size;
  }

  push(item: T): void {
    if (this.size === this.slots.length) this.grow();
    this.slots[(this.head + this.size) & (this.slots.length - 1)] = item;
    this.size++;
  }

  /** The oldest item, or undefined when empty. */
  peek(): T | undefined {
    return this.size === 0 ? undefined : this.slots[this.head];
  }

  /** The newest item, or undefined when empty. */
  peekLast(): T | undefined {
    return this.size === 0 ? undefined : this.slots[(this.head + this.size - 1) & (this.slots.length - 1)];
  }

  /** Removes and returns the oldest item. */
  shift(): T {
    if (this.size === 0) throw new RangeError('Fifo.shift: the queue is empty');
    const item = this.slots[this.head] as T;
    this.slots[this.head] = undefined;
    this.head = (this.head + 1) & (this.slots.length - 1);
    this.size--;
    return item;
  }

  /** Calls `visit` on every item, oldest first. */
  forEach(visit: (item: T) => void): void {
    const mask = this.slots.length - 1;
    for (let i = 0; i < this.size; i++) visit(this.slots[(this.head + i) & mask] as T);
  }

  clear(): void {
    this.slots.fill(undefined);
    this.head = 0;
    this.size = 0;
  }

  private grow(): void {
    const old = this.slots;
    const mask = old.length - 1;
    const slots = new Array<T | undefined>(old.length * 2);
    for (let i = 0; i < this.size; i++) slots[i] = old[(this.head + i) & mask];
    this.slots = slots;
    this.head = 0;
  }
}
