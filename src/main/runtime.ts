// Acquire in order, release in reverse (STYLE.md habit 9). The first SIGTERM/SIGINT shuts down
// gracefully; a second one forces the exit.
import type { Logger } from "pino";

export interface Runtime {
  /** Registers a resource's release; released in reverse order of registration. */
  defer(name: string, release: () => Promise<void> | void): void;
  /** Releases everything once; later calls return the same promise. */
  shutdown(reason: string): Promise<void>;
  /**
   * Installs the signal handlers: `onStop(0)` after a graceful shutdown, `onStop(1)` when the shutdown
   * fails or a second signal forces the exit.
   */
  handleSignals(onStop: (code: number) => void): void;
  readonly stopping: boolean;
}

export function createRuntime(logger: Logger): Runtime {
  const stack: { name: string; release: () => Promise<void> | void }[] = [];
  let done: Promise<void> | undefined;
  let stopping = false;

  const shutdown = (reason: string) => {
    done ??= (async () => {
      stopping = true;
      logger.info({ reason }, "shutting down");
      while (stack.length > 0) {
        const { name, release } = stack.pop()!;
        try {
          await release();
        } catch (err) {
          logger.warn({ err, resource: name }, "release failed");
        }
      }
      logger.info("stopped");
    })();
    return done;
  };

  return {
    defer(name, release) {
      stack.push({ name, release });
    },
    shutdown,
    handleSignals(onStop) {
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals) => {
        signals++;
        if (signals > 1) {
          logger.warn({ signal: sig }, "second signal: forcing exit");
          onStop(1);
          return;
        }
        shutdown(sig).then(
          () => onStop(0),
          () => onStop(1),
        );
      };
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
    },
    get stopping() {
      return stopping;
    },
  };
}
