/**
 * mTLS material (issue 11 item 5): `--tls-cert`, `--tls-key` and `--tls-ca` files loaded into grpc-js
 * server and client credentials. With them a server asks every client for a certificate signed by
 * the CA and refuses the handshake otherwise; the caller's identity is then the certificate's
 * SPIFFE-style URI SAN (`spiffe://hypmesh/vmid/<n>`, `spiffe://hypmesh/client/<name>`, caller.ts),
 * not the metadata header. Without them everything is plaintext and identity is declared: insecure
 * local use only. scripts/make-test-ca.sh makes a test PKI.
 *
 * Files are checked at start-up, so a wrong path or a key of another certificate is a clear Error
 * naming the flag and file, not a handshake failure on the first call.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';

/** The files of one process's TLS identity and trust, as the services will take them. */
export interface TlsConfig {
  /** PEM certificate (chain) this process presents: --tls-cert. */
  readonly certFile: string;
  /** PEM private key of that certificate: --tls-key. */
  readonly keyFile: string;
  /** PEM CA certificate(s) the peer's certificate must chain to: --tls-ca. */
  readonly caFile: string;
}

/** The loaded, checked contents of a TlsConfig. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer;
  /** The certificate's subjectaltname text, for start-up logs. */
  readonly subjectAltName: string;
}

/** The flags, as the services' parsers name them. */
export const TLS_FLAGS = { certFile: '--tls-cert', keyFile: '--tls-key', caFile: '--tls-ca' } as const;

/**
 * A TlsConfig from the three flags: all of them (mTLS) or none (undefined: plaintext); a partial
 * set is an Error naming what is missing.
 */
export function tlsConfigFrom(flags: { readonly certFile?: string | undefined; readonly keyFile?: string | undefined; readonly caFile?: string | undefined }): TlsConfig | undefined {
  const keys = Object.keys(TLS_FLAGS) as (keyof typeof TLS_FLAGS)[];
  const given = keys.filter((k) => flags[k] !== undefined && flags[k] !== '');
  if (given.length === 0) return undefined;
  if (given.length < keys.length) {
    const missing = keys.filter((k) => !given.includes(k)).map((k) => TLS_FLAGS[k]);
    throw new Error(`mTLS needs ${Object.values(TLS_FLAGS).join(', ')} together; missing ${missing.join(', ')}`);
  }
  return { certFile: flags.certFile as string, keyFile: flags.keyFile as string, caFile: flags.caFile as string };
}

function read(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e));
    throw new Error(`${flag} ${JSON.stringify(file)}: cannot read (${why})`);
  }
}

function parsed<T>(flag: string, file: string, what: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    throw new Error(`${flag} ${JSON.stringify(file)}: not a PEM ${what} (${e instanceof Error ? e.message : String(e)})`);
  }
}

/** Reads and checks the files: each readable and PEM, the key the certificate's, the certificate signed by the CA. Error otherwise. */
export function loadTls(config: TlsConfig): TlsMaterial {
  const cert = read(TLS_FLAGS.certFile, config.certFile);
  const key = read(TLS_FLAGS.keyFile, config.keyFile);
  const ca = read(TLS_FLAGS.caFile, config.caFile);
  const x509 = parsed(TLS_FLAGS.certFile, config.certFile, 'certificate', () => new X509Certificate(cert));
  const keyObject: KeyObject = parsed(TLS_FLAGS.keyFile, config.keyFile, 'private key', () => createPrivateKey(key));
  const caX509 = parsed(TLS_FLAGS.caFile, config.caFile, 'CA certificate', () => new X509Certificate(ca));
  if (!x509.checkPrivateKey(keyObject)) throw new Error(`${TLS_FLAGS.keyFile} ${JSON.stringify(config.keyFile)} is not the key of ${TLS_FLAGS.certFile} ${JSON.stringify(config.certFile)} (${x509.subject})`);
  // Only the first CA in the file is checked here; a chain to a later one is left to the handshake.
  if (!x509.checkIssued(caX509) || !x509.verify(caX509.publicKey))
    throw new Error(`${TLS_FLAGS.certFile} ${JSON.stringify(config.certFile)} (${x509.subject}) is not signed by ${TLS_FLAGS.caFile} ${JSON.stringify(config.caFile)} (${caX509.subject})`);
  return { cert, key, ca, subjectAltName: x509.subjectAltName ?? '' };
}

/** Server credentials: present our certificate, and require a client certificate signed by the CA. */
export function serverCredentials(m: TlsMaterial): grpc.ServerCredentials {
  return grpc.ServerCredentials.createSsl(m.ca, [{ cert_chain: m.cert, private_key: m.key }], true);
}

/** Client credentials: present our certificate, and trust only servers signed by the CA. */
export function clientCredentials(m: TlsMaterial): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(m.ca, m.key, m.cert);
}


/**
 * The TLS flags every service takes, with their environment variables and help (the mains add them
 * as options; README "Security"). The client pair is the identity a service presents on the calls it
 * makes (rm→core, vmm→core, vmm→rm, health probes); without it the server certificate is presented,
 * which must then also carry the caller URIs (caller.ts) and the clientAuth usage.
 */
export const TLS_OPTIONS = {
  cert: { flags: '--tls-cert <file>', env: 'HYPMESH_TLS_CERT', help: 'mTLS: PEM certificate this service presents (with --tls-key and --tls-ca; default: plaintext, insecure local use)' },
  key: { flags: '--tls-key <file>', env: 'HYPMESH_TLS_KEY', help: 'mTLS: PEM private key of --tls-cert' },
  ca: { flags: '--tls-ca <file>', env: 'HYPMESH_TLS_CA', help: 'mTLS: PEM CA certificate that every peer certificate must chain to; clients without one are refused' },
  clientCert: { flags: '--tls-client-cert <file>', env: 'HYPMESH_TLS_CLIENT_CERT', help: "mTLS: certificate for this service's own calls to the others (default: --tls-cert); its URI SANs name the caller (spiffe://hypmesh/vmid/<n>)" },
  clientKey: { flags: '--tls-client-key <file>', env: 'HYPMESH_TLS_CLIENT_KEY', help: 'mTLS: PEM private key of --tls-client-cert' },
} as const;

/** The TLS flags' values as commander gives them. */
export interface TlsFlagValues {
  readonly tlsCert?: string | undefined;
  readonly tlsKey?: string | undefined;
  readonly tlsCa?: string | undefined;
  readonly tlsClientCert?: string | undefined;
  readonly tlsClientKey?: string | undefined;
}

/** A service's mTLS: what its server presents, and what its own calls present. */
export interface ServiceTls {
  readonly server: TlsMaterial;
  readonly client: TlsMaterial;
}

/**
 * The service's mTLS from its flags, loaded and checked (loadTls), or undefined for plaintext.
 * A partial set, a client pair without the server set, or a bad file: Error naming the flag.
 */
export function serviceTls(flags: TlsFlagValues): ServiceTls | undefined {
  const server = tlsConfigFrom({ certFile: flags.tlsCert, keyFile: flags.tlsKey, caFile: flags.tlsCa });
  const given = (v: string | undefined): boolean => v !== undefined && v !== '';
  if (server === undefined) {
    if (given(flags.tlsClientCert) || given(flags.tlsClientKey)) throw new Error('--tls-client-cert/--tls-client-key need --tls-cert, --tls-key and --tls-ca');
    return undefined;
  }
  if (given(flags.tlsClientCert) !== given(flags.tlsClientKey)) throw new Error('--tls-client-cert and --tls-client-key go together');
  const material = loadTls(server);
  const client = given(flags.tlsClientCert) ? loadTls({ certFile: flags.tlsClientCert as string, keyFile: flags.tlsClientKey as string, caFile: server.caFile }) : material;
  return { server: material, client };
}
