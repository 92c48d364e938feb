/**
 * docker-compose.yml, the Dockerfile and the Prometheus config agree with the code. There is no
 * Docker engine here, so this reads the files: services, env names, ports, mounted files.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { buildProgram } from '../../src/ops/cli/program.ts';
import { WORKER_SETTINGS } from '../../src/ops/cli/worker-command.ts';
import { parseConfig, workerConfigSchema } from '../../src/ops/config.ts';
import { NODE_FLAGS } from '../../src/ops/node-flags.ts';

interface Service {
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[]; disable?: boolean };
  volumes?: string[];
  ports?: string[];
  deploy?: { replicas?: number };
}

const compose = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
};
const services = compose.services;
const ourServices = Object.entries(services).filter(([, s]) => s.build !== undefined);
const defaults = parseConfig(workerConfigSchema, {}, {});

/** The CLI as main.ts runs it: each command's long flags and the environment variables its options fall back to. */
function cliCommands(): Map<string, { flags: Set<string>; env: Set<string> }> {
  const program = buildProgram();
  return new Map(
    program.commands.map((c) => [
      c.name(),
      {
        flags: new Set(c.options.flatMap((o) => (o.long ? [o.long] : []))),
        env: new Set(c.options.flatMap((o) => (o.envVar ? [o.envVar] : []))),
      },
    ]),
  );
}
const commands = cliCommands();
/** Read through process.env by every command. */
const COMMON_ENV = ['LOG_LEVEL'];
/** Where each long-running service serves /metrics and /healthz. */
const OPS_PORT_ENV: Record<string, string> = { worker: 'METRICS_PORT', gateway: 'GATEWAY_PORT' };

function opsPortOf(service: Service): number {
  const command = service.command?.[0] ?? 'worker';
  const env = OPS_PORT_ENV[command];
  assert.ok(env, `${command} serves no metrics`);
  const value =
    service.environment?.[env] ?? (command === 'worker' ? String(defaults.metricsPort) : undefined);
  assert.ok(value, `set ${env} explicitly for ${command}`);
  return Number(value);
}

/** The repository path a container path is mounted from, following the service's volumes. */
function hostPathOf(service: Service, containerPath: string): string | undefined {
  for (const volume of service.volumes ?? []) {
    const [source = '', target = ''] = volume.split(':');
    if (source.startsWith('./') && (containerPath === target || containerPath.startsWith(`${target}/`))) {
      return join(source, containerPath.slice(target.length));
    }
  }
  return undefined;
}

describe('docker-compose.yml', () => {
  it('has the whole system: PostgreSQL, Redis, three workers, gateway, demo, Prometheus, Grafana', () => {
    for (const name of ['postgres', 'redis', 'worker', 'gateway', 'demo', 'prometheus', 'grafana'])
      assert.ok(services[name], `no ${name} service`);
    assert.ok((services.worker?.deploy?.replicas ?? 1) >= 3, 'fewer than three worker replicas');
  });

  it('runs Redis with AOF (fsync always) and noeviction', () => {
    const command = (services.redis?.command ?? []).join(' ');
    assert.match(command, /--appendonly yes\b/);
    assert.match(command, /--appendfsync always\b/);
    assert.match(command, /--maxmemory-policy noeviction\b/);
  });

  it('starts in order: PostgreSQL and Redis have health checks, our services wait for them to be healthy', () => {
    for (const name of ['postgres', 'redis'])
      assert.ok(services[name]?.healthcheck?.test, `${name} has no healthcheck`);
    for (const [name, service] of ourServices) {
      for (const dependency of ['postgres', 'redis'])
        assert.equal(
          service.depends_on?.[dependency]?.condition,
          'service_healthy',
          `${name} on ${dependency}`,
        );
    }
  });

  for (const [name, service] of ourServices) {
    const command = service.command?.[0] ?? 'worker';
    const todo = commands.has(command) ? false : `pg-bulk-ingest ${command} is not built yet`;
    it(`${name}: runs \`${command}\` with flags and environment variables it reads`, { todo }, () => {
      const cli = commands.get(command);
      assert.ok(cli, `no command ${command} in src/ops/cli/program.ts`);
      const flags = (service.command ?? [])
        .filter((arg) => arg.startsWith('--'))
        .map((arg) => arg.split('=')[0] as string);
      assert.deepEqual(
        flags.filter((flag) => !cli.flags.has(flag)),
        [],
        `${name} passes flags ${command} does not define`,
      );
      const unread = Object.keys(service.environment ?? {}).filter(
        (env) => !cli.env.has(env) && !COMMON_ENV.includes(env),
      );
      assert.deepEqual(unread, [], `${name} sets environment variables ${command} does not read`);
    });
  }

  it('worker: its environment is a valid worker configuration', () => {
    const env = services.worker?.environment ?? {};
    const byEnv = new Map(
      Object.entries(WORKER_SETTINGS).map(([key, [, envName]]) => [envName as string, key]),
    );
    const unknown = Object.keys(env).filter((name) => !byEnv.has(name) && name !== 'LOG_LEVEL');
    assert.deepEqual(unknown, [], 'not worker settings');
    const input = Object.fromEntries(
      Object.entries(env).flatMap(([name, value]) => (byEnv.has(name) ? [[byEnv.get(name), value]] : [])),
    );
    assert.doesNotThrow(() => parseConfig(workerConfigSchema, input, {}));
  });

  it('worker and gateway health checks GET /healthz on the port they serve it on', () => {
    for (const name of ['worker', 'gateway']) {
      const service = services[name] as Service;
      assert.match(
        (service.healthcheck?.test ?? []).join(' '),
        new RegExp(`:${opsPortOf(service)}/healthz`),
        name,
      );
    }
  });

  it('Prometheus scrapes every worker replica and the gateway on their metrics ports', () => {
    const prometheus = services.prometheus as Service;
    const configPath = hostPathOf(prometheus, '/etc/prometheus/prometheus.yml');
    assert.ok(configPath && existsSync(configPath), 'prometheus.yml is not mounted from the repository');
    const config = parse(readFileSync(configPath, 'utf8')) as {
      scrape_configs: {
        job_name: string;
        dns_sd_configs?: { names: string[]; port: number }[];
        static_configs?: { targets: string[] }[];
      }[];
    };
    const targets = config.scrape_configs.flatMap((job) => [
      ...(job.dns_sd_configs ?? []).flatMap((sd) => sd.names.map((host) => `${host}:${sd.port}`)),
      ...(job.static_configs ?? []).flatMap((s) => s.targets),
    ]);
    for (const name of ['worker', 'gateway'])
      assert.ok(
        targets.includes(`${name}:${opsPortOf(services[name] as Service)}`),
        `${name} is not scraped`,
      );
    const [worker] = config.scrape_configs.filter((job) =>
      job.dns_sd_configs?.some((sd) => sd.names.includes('worker')),
    );
    assert.equal(worker?.job_name, 'pgbi-worker', 'the dashboard filters on job="pgbi-worker"');
  });

  it('Grafana: anonymous read access, provisioning and dashboards mounted from the repository', () => {
    const grafana = services.grafana as Service;
    assert.equal(grafana.environment?.GF_AUTH_ANONYMOUS_ENABLED, 'true');
    assert.equal(grafana.environment?.GF_AUTH_ANONYMOUS_ORG_ROLE, 'Viewer');
    assert.ok(grafana.ports?.includes('3000:3000'));
    const home = grafana.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ?? '';
    const homeFile = hostPathOf(grafana, home);
    assert.ok(homeFile && existsSync(homeFile), `home dashboard ${home} is not a file of the repository`);
    const datasourceFile = hostPathOf(grafana, '/etc/grafana/provisioning/datasources/prometheus.yml');
    assert.ok(datasourceFile && existsSync(datasourceFile));
    const { datasources } = parse(readFileSync(datasourceFile, 'utf8')) as { datasources: { url: string }[] };
    assert.equal(
      datasources[0]?.url,
      `http://prometheus:${(services.prometheus?.ports?.[0] ?? '').split(':')[1]}`,
    );
  });

  it('every file or folder mounted from the repository exists', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const volume of service.volumes ?? []) {
        const [source = ''] = volume.split(':');
        if (source.startsWith('./'))
          assert.ok(existsSync(source), `${name} mounts ${source}, which does not exist`);
      }
    }
  });

  it('the gateway publishes its GATEWAY_PORT', () => {
    const gateway = services.gateway as Service;
    const port = opsPortOf(gateway);
    assert.ok(
      gateway.ports?.some((p) => p.endsWith(`:${port}`)),
      `port ${port} is not published`,
    );
  });
});

describe('Dockerfile', () => {
  const lines = readFileSync('Dockerfile', 'utf8')
    .split('\n')
    .filter((l) => l.trim() && !l.trim().startsWith('#'));
  const instruction = (name: string) =>
    lines.filter((l) => l.startsWith(`${name} `)).map((l) => l.slice(name.length + 1).trim());

  it('is multi-stage, installs production dependencies only, and runs as a non-root user', () => {
    assert.ok(instruction('FROM').length >= 2, 'not multi-stage');
    assert.ok(instruction('RUN').some((r) => r.includes('npm ci --omit=dev')));
    const user = instruction('USER').at(-1);
    assert.ok(user && user !== 'root' && user !== '0', 'runs as root');
  });

  it('exposes the default metrics port', () => {
    const exposed = instruction('EXPOSE')
      .flatMap((e) => e.split(/\s+/))
      .map(Number);
    assert.ok(
      exposed.includes(defaults.metricsPort),
      `EXPOSE ${exposed.join(' ')} lacks ${defaults.metricsPort}`,
    );
  });

  it('its ENTRYPOINT starts Node with the flags of src/ops/node-flags.ts', () => {
    const entrypoint = JSON.parse(instruction('ENTRYPOINT').at(-1) ?? '[]') as string[];
    const script = entrypoint.findIndex((arg) => arg.startsWith('dist/'));
    assert.deepEqual(entrypoint.slice(1, script), [...NODE_FLAGS]);
  });

  it('its ENTRYPOINT runs a file `npm run build` produces', () => {
    const entrypoint = JSON.parse(instruction('ENTRYPOINT').at(-1) ?? '[]') as string[];
    const script = entrypoint.find((arg) => arg.startsWith('dist/'));
    assert.ok(script, `ENTRYPOINT ${entrypoint.join(' ')} runs nothing from dist/`);
    const build = JSON.parse(readFileSync('tsconfig.build.json', 'utf8')) as {
      compilerOptions: { rootDir: string; outDir: string };
    };
    const sourceFile = script
      .replace(new RegExp(`^${build.compilerOptions.outDir}/`), `${build.compilerOptions.rootDir}/`)
      .replace(/\.js$/, '.ts');
    assert.ok(existsSync(sourceFile), `${script} would come from ${sourceFile}, which does not exist`);
    assert.ok(instruction('RUN').some((r) => r.includes('npm run build')));
  });
});
