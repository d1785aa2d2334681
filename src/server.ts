import { buildApp } from './app.js'
import { ConfigError, loadApiKeys, loadConfig } from './config.js'

/** Why the gateway cannot listen where it is told to: a configuration problem (exit 78). */
const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'is in use',
  EADDRNOTAVAIL: 'is not an address of this machine',
  EACCES: 'needs privileges',
  ENOTFOUND: 'is not a host name this machine can resolve',
  EAI_AGAIN: 'is not a host name this machine can resolve now',
}

/** Starts the gateway; SIGTERM/SIGINT stop accepting, finish in-flight requests, close Redis. */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>
  try {
    config = loadConfig()
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`)
      process.exit(78) // EX_CONFIG
    }
    throw error
  }

  const app = buildApp(config)
  let stopping = false
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) {
      // A supervisor that repeats its signal must not cut the drain short: SHUTDOWN_TIMEOUT bounds it.
      app.log.warn({ signal }, 'already shutting down: the drain goes on')
      return
    }
    stopping = true
    app.log.info({ signal }, 'shutting down: finishing in-flight requests')
    const timer = setTimeout(() => {
      app.log.error({ timeout_ms: config.shutdownTimeoutMs }, 'shutdown timed out')
      process.exit(1)
    }, config.shutdownTimeoutMs)
    timer.unref()
    try {
      await app.close()
      app.log.info('stopped')
      process.exit(0)
    } catch (error) {
      app.log.error({ err: error }, 'shutdown failed')
      process.exit(1)
    }
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  // SIGHUP reads the API keys again (a rotated API_KEYS_FILE); a bad file keeps the keys in use.
  // One that comes while the gateway boots is applied once it listens.
  let listening = false
  let reloadWhenListening = false
  const reloadKeys = () => {
    try {
      const keys = loadApiKeys()
      app.keyRing.replace(keys)
      const names = [...new Set(keys.map((key) => key.name))]
      app.log.info({ keys: keys.length, names }, 'API keys reloaded')
    } catch (error) {
      app.log.error(
        { err: error instanceof Error ? error.message : String(error) },
        'API keys not reloaded: the keys in use are kept',
      )
    }
  }
  process.on('SIGHUP', () => {
    if (listening) reloadKeys()
    else reloadWhenListening = true
  })

  try {
    await app.listen({ port: config.port, host: config.host })
  } catch (error) {
    const why = LISTEN_ERRORS[(error as NodeJS.ErrnoException).code ?? '']
    if (why === undefined) throw error
    process.stderr.write(
      `jobgate cannot listen on ${config.host}:${config.port}: it ${why} (set PORT or HOST)\n`,
    )
    await app.close().catch(() => undefined)
    process.exit(78) // EX_CONFIG
  }
  listening = true
  if (reloadWhenListening) reloadKeys()
  if (config.apiKeys.length === 0) {
    app.log.warn(
      { host: config.host, allow_unauthenticated: config.allowUnauthenticated },
      'no API keys configured: every caller may use every route, admin ones included',
    )
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `jobgate failed to start: ${error instanceof Error ? error.stack : String(error)}\n`,
  )
  process.exit(1)
})
