/**
 * The load side of `bench/receiver.ts`, in its own process so autocannon never shares an event loop (or a core)
 * with the server under test. Receives one {@link LoadRequest} per run over IPC and answers with a {@link LoadResult}.
 */
import autocannon from "autocannon";

/** One autocannon run. Each request gets a unique note id and Idempotency-Key, so every one is really queued. */
export interface LoadRequest {
  url: string;
  connections: number;
  durationSeconds: number;
  headers: Record<string, string>;
  /** The JSON body with `__NOTE_ID__` where the note id goes. */
  bodyTemplate: string;
  /** Idempotency-Keys are `<keyPrefix>-<n>`. */
  keyPrefix: string;
  /** Note ids are `noteIdBase + n`: distinct across runs, or a command's jobId would repeat and skip the insert. */
  noteIdBase: number;
}

export interface LoadResult {
  requestsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  total: number;
  ok2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

async function run(request: LoadRequest): Promise<LoadResult> {
  const [before, after] = request.bodyTemplate.split("__NOTE_ID__") as [string, string];
  let n = 0;
  const result = await autocannon({
    url: request.url,
    method: "POST",
    connections: request.connections,
    duration: request.durationSeconds,
    requests: [
      {
        setupRequest: (req) => {
          n += 1;
          return {
            ...req,
            headers: { ...request.headers, "idempotency-key": `${request.keyPrefix}-${n}` },
            body: `${before}${request.noteIdBase + n}${after}`,
          };
        },
      },
    ],
  });
  return {
    requestsPerSecond: result.requests.average,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    total: result.requests.total,
    ok2xx: result["2xx"],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
  };
}

process.on("message", (request: LoadRequest) => {
  run(request).then(
    (result) => process.send?.({ result }),
    (error: unknown) => process.send?.({ error: String(error) }),
  );
});
process.send?.({ ready: true });
