import type { z } from 'zod';
import type { Client } from './api.ts';

/**
 * Follows a server-sent event stream of snapshots (server/http/events.ts). EventSource cannot
 * send the Authorization header, so this reads the stream with fetch; it reopens the stream when
 * it ends early (a deploy of the server, a proxy's timeout), until `stop` is called or the
 * server ends it with a final snapshot.
 */
export function followSnapshots<S extends z.ZodType>(
  client: Client,
  url: string,
  schema: S,
  handlers: { snapshot(value: z.output<S>): void; error?(message: string): void; live?(connected: boolean): void },
  options: { isFinal?: (value: z.output<S>) => boolean; retryMs?: number } = {},
): () => void {
  const controller = new AbortController();
  let finished = false;
  const run = async () => {
    while (!controller.signal.aborted && !finished) {
      try {
        const response = await fetch(url, { headers: { authorization: `Bearer ${client.token}`, accept: 'text/event-stream' }, signal: controller.signal });
        if (!response.ok || !response.body) {
          if (response.status === 401) client.onUnauthenticated?.();
          handlers.error?.(`live updates stopped: the server answered ${response.status}`);
          if (response.status >= 400 && response.status < 500) return;
        } else {
          handlers.live?.(true);
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += value;
            // Events are separated by a blank line (§9.2.6); comments (": …") keep the line alive.
            let cut: number;
            while ((cut = buffer.indexOf('\n\n')) >= 0) {
              const block = buffer.slice(0, cut);
              buffer = buffer.slice(cut + 2);
              const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
              const data = block
                .split('\n')
                .filter((line) => line.startsWith('data: '))
                .map((line) => line.slice(6))
                .join('\n');
              if (!data) continue;
              if (event === 'error') {
                handlers.error?.((JSON.parse(data) as { error?: { message?: string } }).error?.message ?? 'live updates stopped');
                finished = true;
                continue;
              }
              const parsed = schema.safeParse(JSON.parse(data));
              if (!parsed.success) {
                handlers.error?.('a live update was not what this UI expects');
                continue;
              }
              handlers.snapshot(parsed.data);
              if (options.isFinal?.(parsed.data)) finished = true;
            }
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return;
      }
      handlers.live?.(false);
      if (!finished && !controller.signal.aborted) await new Promise((resolve) => setTimeout(resolve, options.retryMs ?? 2000));
    }
  };
  void run();
  return () => controller.abort();
}
