/**
 * Graceful drain (issue 10 item 4): from the moment a service starts shutting down, every new call
 * of its API is refused UNAVAILABLE (`draining`, so clients retry elsewhere or after the restart),
 * while the unary calls already running finish. serveGrpc waits for them (`idle`) before the
 * service's own drain ends its sessions, so a StartVm in progress completes, and is then torn down
 * with its session, instead of being cancelled half-way with its VM left in the RM and the core.
 * Health, reflection and FaultService are outside the door.
 */
import * as grpc from '@grpc/grpc-js';

/** The rule a refused call carries (ErrorInfo reason). */
export const DRAINING_RULE = 'draining';

type Handler = (call: never, callback?: never) => void;

export class DrainDoor {
  private draining = false;
  private inFlight = 0;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly serviceName: string) {}

  /** New calls are refused from now on. */
  begin(): void {
    this.draining = true;
  }

  /** Resolves once no unary call admitted before `begin` is still running. */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.add(resolve));
  }

  private refusal(): grpc.ServiceError {
    const details = `${this.serviceName} is shutting down (${DRAINING_RULE}): retry against another instance or once it is back`;
    return Object.assign(new Error(details), { code: grpc.status.UNAVAILABLE, details, metadata: new grpc.Metadata() });
  }

  private done(): void {
    if (--this.inFlight > 0) return;
    for (const w of [...this.waiters]) w();
    this.waiters.clear();
  }

  /** `implementation` with the door in front of every method of `definition`. */
  wrap(definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
    const wrapped: Record<string, Handler> = {};
    for (const [name, method] of Object.entries(definition)) {
      const handler = implementation[name] as Handler | undefined;
      if (handler === undefined) continue;
      if (!method.requestStream && !method.responseStream) {
        wrapped[name] = ((call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
          if (this.draining) return callback(this.refusal());
          this.inFlight++;
          let once = false;
          (handler as unknown as grpc.handleUnaryCall<unknown, unknown>)(call, (err, value) => {
            if (!once) {
              once = true;
              this.done();
            }
            callback(err, value);
          });
        }) as unknown as Handler;
      } else {
        // A stream opened while draining is refused; the open ones end with the service's drain.
        wrapped[name] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
          if (this.draining) return void call.emit('error', this.refusal());
          (handler as unknown as (c: typeof call) => void)(call);
        }) as unknown as Handler;
      }
    }
    return { ...implementation, ...wrapped } as grpc.UntypedServiceImplementation;
  }
}
