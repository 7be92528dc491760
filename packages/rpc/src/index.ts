export {
  errnoToGrpc,
  rmiStatusToGrpc,
  rmErrorToGrpc,
  vmmErrnoToGrpc,
  type RmDomainError,
  type AnyDomainError,
  ERROR_DOMAINS,
  domainStatus,
  invalidArgument,
  permissionDenied,
  resourceExhausted,
  ADMISSION_DOMAIN,
  fromThrown,
  quoted,
  ECHO_MAX_BYTES,
  dependencyStatus,
  dependencyToGrpc,
  type BugLog,
} from './status.js';
export {
  STATUS_DETAILS_KEY,
  STATUS_MESSAGE_MAX_BYTES,
  boundText,
  DETAIL_TYPES,
  StatusError,
  packAny,
  decodeStatusDetails,
  type DecodedStatus,
} from './status-details.js';
export { unaryWith, type UnaryHandler, type Result } from './unary.js';
export { callUnary, describeRefusal, SERVICE_CLIENT_OPTIONS, serviceClientOptions, serviceCredentials, type CallOutcome, type ClientUnaryFn } from './client-call.js';
export { ACTING_FOR, CALLER_VMID_KEY, callerVmid, identityFromSan, peerIdentity, requireCaller, SPIFFE_CLIENT_PREFIX, SPIFFE_VMID_PREFIX, type CallerCall, type PeerIdentity } from './caller.js';
export {
  ADDRESS_BITS_MAX,
  FRAME_BITS_MAX,
  SAFE_BITS_MAX,
  VMID_MAX,
  u64ToNumber,
  addressField,
  frameField,
  grantIdField,
  numberToU64,
  vmidField,
  required,
  enumField,
  openEnumField,
  u64Register,
  u64Operand,
  nonEmpty,
} from './shape.js';
export { DescriptorIndex, addReflection, filesOfSet, serverDescriptors, type ReflectionAnswer } from './reflection.js';
export { serveGrpc, serveSecurity, SERVER_OPTIONS, SHUTDOWN_GRACE_MS_DEFAULT, type RpcLog, type ServeFaults, type ServeOptions, type ServeSecurity, type Served } from './server.js';
export { delegating } from './resettable.js';
export { failureStatus, lostStatus, EXEMPT_PATHS, FAULT_RULE } from './fault-status.js';
export { faultFrontDoor, type FaultFrontDoor, type FaultHandlerPorts } from './fault-handlers.js';
export { faultServiceHandlers } from './fault-service.js';
export { armFromFile, faultLogLine, frontDoorFaults, parseFaultSeed, processFaultEngine, FAULTS_ENV, FAULT_SEED_ENV, type FaultOptions, type ProcessFaultPorts, type ProcessFaults } from './fault-config.js';
export { faultClientInterceptor, type FaultClientInterceptorPorts } from './fault-client-interceptor.js';
export { dependencyNoter, inDependencyScope, unreachedOf, type Dependency, type DependencyFailure, type Unreached } from './dependency.js';
export { DEPENDENCY_TIMEOUT_MS, TIMEOUT_MS_MAX, parseTimeoutMs, timeoutMsParser } from './timeouts.js';
export { DEPENDENCY_GRACE_MS_DEFAULT, watchDependencies, type DependencyWatch, type TransitionLog, type WatchedDependency } from './dependency-health.js';
export { REQUEST_ID_KEY, REQUEST_ID_MAX_CHARS, REQUEST_KEYS_MAX, RequestKeys, keyReused, requestDigest, requestIdOf, type KeyedEntry, type KeyedOutcome, type KeyLookup } from './request-keys.js';
export { OPEN_KEYS_MAX, OperationKeys, RETRY_BACKOFF_MS, retryAmbiguous, type Attempt, type RetryClock } from './keyed-retry.js';
export { keyedCall, outcomeUnknown, outcomeUnknownMessage, OUTCOME_UNKNOWN_RULE, type KeyedCall, type KeyedReply } from './keyed-call.js';
export {
  CLIENT_KEY,
  ANONYMOUS_CLIENT,
  CLIENT_FORM,
  principal,
  clientName,
  callerClient,
  principalOf,
  principalFromKey,
  AdmissionLimits,
  QuotaLedger,
  type Principal,
  type AdmissionRule,
  type AdmissionTable,
} from './admission.js';
export { callObserver, ProcessMetrics, ServiceMetrics, serveMetrics, type CallEnd, type GaugeSample } from './metrics.js';
export { carrierSpan, enableOtlpTracing, enableTracing, exportTransitionsLogged, flushTracing, traceClient, traceparentOf, traceServer, tracingEnabled, withRemoteParent, type TracingLog } from './tracing.js';
export { loadTls, serverCredentials, clientCredentials, serviceTls, tlsConfigFrom, TLS_FLAGS, TLS_OPTIONS, type ServiceTls, type TlsConfig, type TlsFlagValues, type TlsMaterial } from './tls.js';
export { AUTHZ_TABLE, authorize, authzRule, guardAuthz, isOpen, TABLE_ONLY, type AuthzRule, type AuthzTable, type VmidClass } from './authz.js';
export { orRefuseStartup } from './startup.js';
