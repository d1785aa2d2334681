import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** PEM files of a private certificate authority, made fresh with `openssl` for one test file. */
export interface Certificates {
  dir: string
  ca: string
  /** For 127.0.0.1 and localhost (or the `serverNames` given), signed by `ca`. */
  serverCert: string
  serverKey: string
  /** A client certificate signed by `ca`, for servers with `tls-auth-clients yes`. */
  clientCert: string
  clientKey: string
  remove(): void
}

/** Runs `openssl` in `dir`: `words` split at spaces, then `more` as they are. */
function openssl(dir: string, words: string, more: string[] = []): void {
  execFileSync('openssl', [...words.split(' '), ...more], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  })
}

export interface CertificateOptions {
  /** The server certificate's subjectAltName, e.g. `DNS:localhost` for one valid by name only. */
  serverNames?: string
}

export function makeCertificates({
  serverNames = 'IP:127.0.0.1,DNS:localhost',
}: CertificateOptions = {}): Certificates {
  const dir = mkdtempSync(join(tmpdir(), 'jobgate-tls-'))
  openssl(dir, 'req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2', [
    '-subj',
    '/CN=jobgate test CA',
  ])
  writeFileSync(join(dir, 'server.ext'), `subjectAltName=${serverNames}\n`)
  const signed = (name: string, subject: string, extensions = '') => {
    openssl(dir, `req -newkey rsa:2048 -nodes -keyout ${name}.key -out ${name}.csr`, [
      '-subj',
      subject,
    ])
    openssl(
      dir,
      `x509 -req -in ${name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out ${name}.crt -days 2${extensions}`,
    )
  }
  signed('server', '/CN=localhost', ' -extfile server.ext')
  signed('client', '/CN=jobgate worker')
  return {
    dir,
    ca: join(dir, 'ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.crt'),
    clientKey: join(dir, 'client.key'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  }
}

/**
 * `redis-server` arguments for a TLS-only port beside the plain one (which the tests keep for
 * their own assertions) that also requires a client certificate signed by the CA.
 */
export function tlsPortArgs(certificates: Certificates, port: number): string[] {
  return [
    '--tls-port',
    String(port),
    '--tls-cert-file',
    certificates.serverCert,
    '--tls-key-file',
    certificates.serverKey,
    '--tls-ca-cert-file',
    certificates.ca,
    '--tls-auth-clients',
    'yes',
  ]
}
