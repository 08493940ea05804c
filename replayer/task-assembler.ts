// Groups a stream of log entries into whole tasks (start entry through TaskEnd), so a replaying VM
// only ever starts a task whose every input has arrived. Control entries (no-op, epoch, state hash)
// come out separately, in order. Entries out of place are a malformed log, reported by seq.

import { type Entry, isControl, isTaskStart, Kind, kindName } from '../logging-channel/entry.js';

export class MalformedLogError extends Error {
  override name = 'MalformedLogError';
}

export type Assembled = { type: 'task'; entries: Entry[] } | { type: 'control'; entry: Entry };

export class TaskAssembler {
  private current: Entry[] | null = null;

  constructor(private readonly where: string) {}

  /** The first seq of a task that has started but not ended, if any. */
  get openTaskSeq(): number | null {
    return this.current ? this.current[0]!.seq : null;
  }

  push(entry: Entry, out: Assembled[]): void {
    if (isControl(entry.kind)) {
      if (this.current) throw new MalformedLogError(`${this.where}: seq ${entry.seq}: ${kindName[entry.kind]} entry inside the task that started at seq ${this.current[0]!.seq}`);
      out.push({ type: 'control', entry });
      return;
    }
    if (isTaskStart(entry.kind)) {
      if (this.current) throw new MalformedLogError(`${this.where}: seq ${entry.seq}: ${kindName[entry.kind]} starts a task before the task at seq ${this.current[0]!.seq} ended`);
      this.current = [entry];
      return;
    }
    if (!this.current) throw new MalformedLogError(`${this.where}: seq ${entry.seq}: ${kindName[entry.kind] ?? entry.kind} entry outside any task`);
    this.current.push(entry);
    if (entry.kind === Kind.TaskEnd) {
      out.push({ type: 'task', entries: this.current });
      this.current = null;
    }
  }
}
