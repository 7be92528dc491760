/**
 * Tracing (issue 11 item 6): OpenTelemetry spans, with W3C trace context (`traceparent`,
 * `tracestate`) carried in gRPC metadata on every call between the services, so one StartVm is one
 * trace across the VMM, the RM and the core.
 *
 * - A server span per call (traceServer), child of the caller's context; the handler runs inside it
 *   (AsyncLocalStorage), so every call the handler makes is its child. Health and reflection are
 *   not traced.
 * - A client span per outbound call (traceClient), whose context rides in the request metadata.
 * - Carriers that are not metadata: an RM message on the Exchange stream is many fragments on one
 *   long-lived call, so the sender opens a span per message (carrierSpan) whose context travels
 *   beside its first fragment (ExchangeRequest.traceparent in msgq.proto, never inside the msgq
 *   bytes a real RM reads), and the RM handles the message in a span with that parent
 *   (withRemoteParent). The Exchange stream itself is not a client span: it outlives every trace.
 *
 * Tracing is off unless a service is started with an exporter (`--otlp-endpoint`: enableOtlpTracing,
 * or an in-memory exporter in tests): then `enableTracing` installs the process-wide provider,
 * context manager and propagator once. Off, the interceptors are not installed and nothing is
 * recorded (README "Tracing").
 */

import * as grpc from '@grpc/grpc-js';
import { context, propagation, SpanKind, SpanStatusCode, trace, ROOT_CONTEXT, type Context, type Span, type TextMapGetter, type TextMapSetter, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { ExportResultCode, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';

const TRACER_NAME = 'hypmesh';

let provider: BasicTracerProvider | undefined;

/**
 * Turns tracing on for this process: spans go to `exporter` (batched unless `immediate`, which tests
 * use so a span is exported as it ends). Once per process; later calls return the same provider.
 */
export function enableTracing(exporter: SpanExporter, immediate = false, serviceName?: string): BasicTracerProvider {
  if (provider !== undefined) return provider;
  provider = new BasicTracerProvider({
    spanProcessors: [immediate ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter)],
    ...(serviceName !== undefined && { resource: resourceFromAttributes({ 'service.name': serviceName }) }),
  });
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return provider;
}

/**
 * `--otlp-endpoint URL` (HYPMESH_OTLP_ENDPOINT): spans of this process, as service `serviceName`
 * (the OTel `service.name` resource), batched to an OTLP/gRPC collector at `url`
 * (`http://host:4317`; `https://` for TLS). Call before the server and clients are made: they
 * install the interceptors only when tracing is on. An unreachable collector loses spans, never calls.
 */
export function enableOtlpTracing(url: string, serviceName: string, log?: TracingLog): BasicTracerProvider {
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch {
    throw new Error(`--otlp-endpoint ${JSON.stringify(url)} is not a URL (e.g. http://127.0.0.1:4317)`);
  }
  if (protocol !== 'http:' && protocol !== 'https:') throw new Error(`--otlp-endpoint ${JSON.stringify(url)}: the scheme must be http or https, not ${protocol}`);
  const exporter = new OTLPTraceExporter({ url });
  return enableTracing(log === undefined ? exporter : exportTransitionsLogged(exporter, url, log), false, serviceName);
}

/** A pino-like logger for the collector's transitions. */
export interface TracingLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * `exporter`, logging once when its exports start failing (spans are being lost: the collector is
 * down or refuses) and once when one succeeds again, as dependency-health.ts logs a dependency's
 * transitions; the OpenTelemetry SDK itself reports a failed batch nowhere.
 */
export function exportTransitionsLogged(exporter: SpanExporter, collector: string, log: TracingLog): SpanExporter {
  let failing = false;
  return {
    export: (spans, done) =>
      exporter.export(spans, (result) => {
        const ok = result.code === ExportResultCode.SUCCESS;
        if (ok === failing) {
          failing = !ok;
          if (ok) log.info({ collector }, 'trace export to the collector succeeds again');
          else log.warn({ collector, spans: spans.length, error: result.error?.message }, 'trace export to the collector failing: spans are lost until it succeeds');
        }
        done(result);
      }),
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  };
}

/** How long shutdown waits for the last batch: a collector that does not answer must not hold the process up. */
export const TRACING_FLUSH_TIMEOUT_MS = 2_000;

/** Exports the spans still batched (on shutdown, before the process exits), for at most TRACING_FLUSH_TIMEOUT_MS; a no-op with tracing off. */
export async function flushTracing(): Promise<void> {
  if (provider === undefined) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, TRACING_FLUSH_TIMEOUT_MS)));
  await Promise.race([provider.forceFlush().catch(() => undefined), timeout]);
  clearTimeout(timer);
}

/** Whether enableTracing ran. */
export const tracingEnabled = (): boolean => provider !== undefined;

const tracer = (): Tracer => trace.getTracer(TRACER_NAME);

const metadataGetter: TextMapGetter<grpc.Metadata> = {
  keys: (m) => Object.keys(m.getMap()),
  get: (m, key) => {
    const values = m.get(key).filter((v): v is string => typeof v === 'string');
    return values.length === 0 ? undefined : values;
  },
};
const metadataSetter: TextMapSetter<grpc.Metadata> = { set: (m, key, value) => m.set(key, value) };

/** `/hypmesh.core.v1.CoreService/Translate` → `hypmesh.core.v1.CoreService/Translate`, the span name semconv asks for. */
const spanName = (path: string): string => path.replace(/^\//, '');

function rpcAttributes(path: string): Record<string, string> {
  const [service = '', method = ''] = spanName(path).split('/');
  return { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method };
}

function endSpan(span: Span, code: grpc.status, details?: string): void {
  span.setAttribute('rpc.grpc.status_code', code);
  if (code !== grpc.status.OK) span.setStatus({ code: SpanStatusCode.ERROR, message: `${grpc.status[code]}${details ? `: ${details.slice(0, 200)}` : ''}` });
  span.end();
}

/** Infrastructure every service answers (dependency probes poll health each second): not traced, so traces are the calls' own. */
const UNTRACED = /^\/grpc\.(health|reflection)\./;

/** A SERVER span per call, child of the context in the request metadata; the handler runs in it. */
export function traceServer(serviceName: string): grpc.ServerInterceptor {
  return (method, call) => {
    if (UNTRACED.test(method.path)) return new grpc.ServerInterceptingCall(call);
    let span: Span | undefined;
    let active: Context = ROOT_CONTEXT;
    const end = (code: grpc.status, details?: string): void => {
      if (span === undefined) return;
      endSpan(span, code, details);
      span = undefined;
    };
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const parent = propagation.extract(ROOT_CONTEXT, metadata, metadataGetter);
        span = tracer().startSpan(spanName(method.path), { kind: SpanKind.SERVER, attributes: { ...rpcAttributes(method.path), 'hypmesh.service': serviceName } }, parent);
        active = trace.setSpan(parent, span);
        context.with(active, () => next(metadata));
      })
      .withOnReceiveMessage((message, next) => context.with(active, () => next(message)))
      // grpc-js calls a unary handler from the half-close: it (and all it awaits) runs in the span.
      .withOnReceiveHalfClose((next) => context.with(active, next))
      .withOnCancel(() => end(grpc.status.CANCELLED))
      .build();
    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendStatus((status, next) => {
        end(status.code ?? grpc.status.UNKNOWN, status.details);
        next(status);
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}

/** A CLIENT span per outbound call, child of the active context; its context rides in the metadata. */
export const traceClient: grpc.Interceptor = (options, nextCall) => {
  const path = options.method_definition.path;
  const span = tracer().startSpan(spanName(path), { kind: SpanKind.CLIENT, attributes: rpcAttributes(path) });
  const ctx = trace.setSpan(context.active(), span);
  return new grpc.InterceptingCall(nextCall(options), {
    start(metadata, _listener, next) {
      propagation.inject(ctx, metadata, metadataSetter);
      next(
        metadata,
        new grpc.ListenerBuilder()
          .withOnReceiveStatus((status, nextStatus) => {
            endSpan(span, status.code, status.details);
            nextStatus(status);
          })
          .build(),
      );
    },
  });
};

/** The active context as a `traceparent` value (for a carrier that is not metadata), or '' when none. */
export function traceparentOf(active: Context = context.active()): string {
  const carrier: Record<string, string> = {};
  propagation.inject(active, carrier);
  return carrier['traceparent'] ?? '';
}

/**
 * A CLIENT span for one message sent on a carrier that is not metadata (the VMM's RM request on the
 * Exchange stream), child of the active context: its `traceparent` goes beside the message, and
 * `end` closes it with the outcome (an error message, or none). With tracing off: '' and a no-op.
 */
export function carrierSpan(name: string, attributes: Record<string, string | number>): { readonly traceparent: string; end(error?: string): void } {
  if (!tracingEnabled()) return { traceparent: '', end: () => {} };
  const span = tracer().startSpan(name, { kind: SpanKind.CLIENT, attributes });
  return {
    traceparent: traceparentOf(trace.setSpan(context.active(), span)),
    end: (error) => {
      if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error.slice(0, 200) });
      span.end();
    },
  };
}

/**
 * Runs `fn` in a span named `name` whose parent is `traceparent` (from a non-metadata carrier; '' or
 * malformed: the active context, so a message without one stays in its stream's trace). With
 * tracing off it just runs `fn`.
 */
export function withRemoteParent<T>(traceparent: string, name: string, attributes: Record<string, string | number>, fn: () => T): T {
  if (!tracingEnabled()) return fn();
  const parent = traceparent === '' ? context.active() : propagation.extract(context.active(), { traceparent });
  return tracer().startActiveSpan(name, { kind: SpanKind.SERVER, attributes }, parent, (span) => {
    try {
      const r = fn();
      if (r instanceof Promise) return r.finally(() => span.end()) as T;
      span.end();
      return r;
    } catch (e) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
      span.end();
      throw e;
    }
  });
}
