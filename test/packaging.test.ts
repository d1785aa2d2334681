import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { ROOT } from '../src/paths.js'

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8')

t.test('docker-compose.yml is a valid compose file of redis, gateway and worker', async (t) => {
  const rendered = execFileSync(
    'docker-compose',
    ['-f', join(ROOT, 'docker-compose.yml'), 'config'],
    {
      encoding: 'utf8',
    },
  )
  const services = Object.keys(
    (parse(rendered) as { services: Record<string, unknown> }).services,
  ).sort()
  t.strictSame(services, ['gateway', 'redis', 'worker'])
})

t.test(
  'the gateway image: multi-stage, LTS Node, non-root, production only, health check',
  async (t) => {
    const dockerfile = read('Dockerfile')
    t.equal(dockerfile.match(/^FROM /gm)?.length, 2, 'two stages')
    t.match(dockerfile, /node:26-/, 'Node 26, the active LTS line')
    t.match(dockerfile, /npm prune --omit=dev/)
    t.match(dockerfile, /^USER node$/m)
    t.match(dockerfile, /^HEALTHCHECK .*\n?.*\/healthz/m)
    t.notMatch(dockerfile, /COPY \. /, 'copies only what it needs')
  },
)

t.test('the worker image: non-root, the shared lua/ scripts, PHP from Debian', async (t) => {
  const dockerfile = read('php-worker/Dockerfile')
  t.match(dockerfile, /php-redis/)
  t.match(dockerfile, /COPY lua /)
  t.match(dockerfile, /^USER /m)
})

t.test(
  'the worker image, ./dev up and the supervisord example set memory_limit above --memory',
  async (t) => {
    // Debian's php-cli has no memory_limit: without one, --memory's default 96 MB guards nothing mid-job.
    for (const [file, line] of [
      ['php-worker/Dockerfile', /^ENTRYPOINT .*$/m],
      ['dev', /^\s*setsid php .*$/m],
      ['php-worker/examples/supervisord.conf', /^command=.*$/m],
    ] as const) {
      const command = line.exec(read(file))?.[0] ?? ''
      const limit = Number(/memory_limit=(\d+)M/.exec(command)?.[1])
      const memory = Number(/--memory=(\d+)/.exec(command)?.[1] ?? 96)
      t.ok(limit > memory, `${file}: memory_limit ${limit}M above --memory ${memory}`)
    }
  },
)

t.test('npm start, the image and ./dev up run the gateway with the same node flags', async (t) => {
  const { scripts } = JSON.parse(read('package.json')) as { scripts: { start: string } }
  // `exec`: npm's shell gives way to Node, so a signal to `npm start` reaches the gateway.
  t.match(scripts.start, /^exec node --max-semi-space-size=\d+ dist\/src\/server\.js$/)
  const command = scripts.start.replace(/^exec /, '')
  const cmd = /^CMD (\[.*\])$/m.exec(read('Dockerfile'))?.[1] ?? '[]'
  t.strictSame(JSON.parse(cmd), command.split(' '), 'the image CMD')
  const escaped = command.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  t.match(read('dev'), new RegExp(`^\\s*setsid ${escaped} >>`, 'm'), './dev up')
})
