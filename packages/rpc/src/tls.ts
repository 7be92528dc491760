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

