/** Reading the Grafana dashboards' queries, for the dashboard tests. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const GRAFANA_DIR = 'grafana';
export const DASHBOARDS_DIR = join(GRAFANA_DIR, 'dashboards');

export interface PanelQuery {
  readonly file: string;
  readonly panel: string;
  readonly refId: string;
  readonly expr: string;
  readonly datasourceUid: string | undefined;
}

interface Panel {
  readonly title?: string;
  readonly type?: string;
  readonly datasource?: { uid?: string };
  readonly targets?: readonly { refId?: string; expr?: string; datasource?: { uid?: string } }[];
  readonly panels?: readonly Panel[];
}

export function dashboardFiles(): string[] {
  return readdirSync(DASHBOARDS_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => join(DASHBOARDS_DIR, f));
}

export function readDashboard(file: string): { uid?: string; title?: string; panels?: Panel[] } {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** Every panel (rows' nested panels included) of a dashboard. */
export function panelsOf(dashboard: { panels?: readonly Panel[] }): Panel[] {
  return (dashboard.panels ?? []).flatMap((p) => [p, ...panelsOf(p)]);
}

/** Every PromQL query of every panel of every dashboard. */
export function panelQueries(): PanelQuery[] {
  return dashboardFiles().flatMap((file) =>
    panelsOf(readDashboard(file)).flatMap((panel) =>
      (panel.targets ?? []).map((t) => ({
        file,
        panel: panel.title ?? '(untitled)',
        refId: t.refId ?? '?',
        expr: t.expr ?? '',
        datasourceUid: t.datasource?.uid ?? panel.datasource?.uid,
      })),
    ),
  );
}

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
  'atan2',
]);

/**
 * The metric names a PromQL expression selects: identifiers that are not functions (followed
 * by `(`), keywords, label names (inside `{}` or a `by (...)` list), strings, durations or
 * Grafana variables.
 */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // strings
    .replace(/\$\{?\w+\}?/g, ' ') // Grafana variables: $__rate_interval, ${stream}
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // label lists
    .replace(/\{[^}]*\}/g, '{}') // label matchers
    .replace(/\[[^\]]*\]/g, '[]'); // ranges and subqueries
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(?<![\w.:])[a-zA-Z_:][\w:]*(?![\w:])(\s*\()?/g)) {
    const [whole, call] = match;
    const name = whole.replace(/\s*\($/, '');
    if (call !== undefined || KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names];
}

/**
 * Whether a series name is one of `exported` (metric name to type): a histogram's `_bucket`,
 * `_sum` and `_count` series (a summary's `_sum` and `_count`) belong to its name.
 */
export function isExported(name: string, exported: ReadonlyMap<string, string>): boolean {
  if (exported.has(name)) return true;
  const [, base, suffix] = /^(.*)_(bucket|sum|count)$/.exec(name) ?? [];
  const type = base === undefined ? undefined : exported.get(base);
  return type === 'histogram' || (type === 'summary' && suffix !== 'bucket');
}
