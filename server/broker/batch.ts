/**
 * One query for many connections arriving together (a reconnect storm after a restart): keys
 * asked for while a batch is being loaded wait for the next batch, which starts as soon as the
 * current one ends, so under load the batches grow by themselves and the database (SQLite has one
 * connection) answers a wave of connections in one round trip instead of one each. Nothing is
 * kept between batches: every answer is read after it was asked for, so a revocation committed
 * before a connection signs in is always seen (the same guarantee as a query per connection).
 */
export interface BatchLoader<K, V> {
  load(key: K): Promise<V | undefined>;
}

export function createBatchLoader<K, V>(fetch: (keys: readonly K[]) => Promise<Map<K, V>>, options: { maxBatch: number }): BatchLoader<K, V> {
  let queue: { key: K; resolve: (value: V | undefined) => void; reject: (error: unknown) => void }[] = [];
  let running = false;

  async function drain(): Promise<void> {
    running = true;
    try {
      while (queue.length > 0) {
        const batch = queue.slice(0, options.maxBatch);
        queue = queue.slice(batch.length);
        try {
          const found = await fetch([...new Set(batch.map((item) => item.key))]);
          for (const item of batch) item.resolve(found.get(item.key));
        } catch (error) {
          for (const item of batch) item.reject(error);
        }
      }
    } finally {
      running = false;
    }
  }

  return {
    load(key) {
      return new Promise<V | undefined>((resolve, reject) => {
        queue.push({ key, resolve, reject });
        // The first key of a batch waits one turn of the event loop for the others of its wave.
        if (!running && queue.length === 1) setImmediate(() => void drain());
      });
    },
  };
}

/**
 * Online/offline changes written together: the latest state per device since the last write, one
 * statement per state, a write at a time. A storm's 2,000 "online" updates become a few.
 */
export function createPresenceBatcher(write: (online: readonly string[], offline: readonly string[]) => Promise<void>, onError: (error: unknown) => void) {
  let pending = new Map<string, boolean>();
  let running: Promise<void> | undefined;

  async function drain(): Promise<void> {
    while (pending.size > 0) {
      const changes = pending;
      pending = new Map();
      const online = [...changes].filter(([, on]) => on).map(([id]) => id);
      const offline = [...changes].filter(([, on]) => !on).map(([id]) => id);
      await write(online, offline).catch(onError);
    }
  }

  function start(): void {
    running ??= new Promise<void>((resolve) => setImmediate(resolve))
      .then(drain)
      .finally(() => {
        running = undefined;
        if (pending.size > 0) start();
      });
  }

  return {
    offer(deviceId: string, online: boolean): void {
      pending.set(deviceId, online);
      start();
    },
    /** Resolves when every change offered so far is written (the broker's close waits for it). */
    async flush(): Promise<void> {
      while (running) await running;
    },
  };
}
