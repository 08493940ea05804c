// The body of a streamed guest response on its way to one client. The live loop writes each chunk
// (and the end) into it when the output gate releases that output, in order; the front door attaches
// the HTTP response once it has written the head. What is released before it attaches is kept
// (bounded by --max-streamed-response-bytes, which the VM enforces). When the client goes away before
// the end, the live loop is told (`onCancel`): the guest's stream is then cancelled by a recorded event,
// and what is still released is dropped.

export interface StreamConsumer {
  write(chunk: Uint8Array): void;
  /** `error`: the stream failed or was stopped; the consumer cuts the response off instead of ending it. */
  end(error: string | null): void;
}

export class ResponseStream {
  private buffered: Uint8Array[] = [];
  private ending: { error: string | null } | null = null;
  private consumer: StreamConsumer | null = null;
  private detached = false;

  constructor(private readonly onCancel: () => void = () => {}) {}

  write(chunk: Uint8Array): void {
    if (this.detached || this.ending) return;
    if (this.consumer) this.consumer.write(chunk);
    else this.buffered.push(chunk);
  }

  end(error: string | null): void {
    if (this.detached || this.ending) return;
    this.ending = { error };
    this.consumer?.end(error);
  }

  /** Hands over what was released so far, then every later chunk and the end. */
  attach(consumer: StreamConsumer): void {
    if (this.detached) return;
    this.consumer = consumer;
    const buffered = this.buffered;
    this.buffered = [];
    for (const chunk of buffered) consumer.write(chunk);
    if (this.ending) consumer.end(this.ending.error);
  }

  /** The client is gone (or the response is done): drop the rest; before the end, cancel the stream. */
  detach(): void {
    if (this.detached) return;
    this.detached = true;
    this.consumer = null;
    this.buffered = [];
    if (!this.ending) this.onCancel();
  }
}
