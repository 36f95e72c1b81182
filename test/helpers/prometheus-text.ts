// A strict reader of Prometheus's text exposition format (0.0.4), for the /metrics tests: every line
// is a HELP, a TYPE or a sample of a family declared before it; a line that is none of these, a
// sample of an undeclared family, a bad label or value throws with the line.

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly samples: Sample[];
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const SAMPLE_RE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)$`);
const LABEL_RE = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/;

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest.length > 0) {
    const m = LABEL_RE.exec(rest);
    if (!m) throw new Error(`bad labels in: ${line}`);
    if (Object.hasOwn(labels, m[1]!)) throw new Error(`label ${m[1]} twice in: ${line}`);
    labels[m[1]!] = m[2]!.replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c));
    rest = rest.slice(m[0].length);
  }
  return labels;
}

function parseValue(text: string, line: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  const v = Number(text);
  if (!Number.isFinite(v) || !/^[-+]?[0-9.eE+-]+$/.test(text)) throw new Error(`bad value in: ${line}`);
  return v;
}

/** The families of `text`, by name. @throws Error naming the first line that breaks the format. */
export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const help = new Map<string, string>();
  let current: Family | undefined;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    let m = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line);
    if (m) {
      help.set(m[1]!, m[2]!);
      continue;
    }
    m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line);
    if (m) {
      if (families.has(m[1]!)) throw new Error(`family ${m[1]} declared twice`);
      current = { name: m[1]!, type: m[2]!, help: help.get(m[1]!) ?? "", samples: [] };
      families.set(current.name, current);
      continue;
    }
    if (line.startsWith("#")) throw new Error(`unknown comment line: ${line}`);
    m = SAMPLE_RE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const name = m[1]!;
    const ok =
      current !== undefined &&
      (name === current.name ||
        (current.type === "histogram" &&
          [`_bucket`, `_sum`, `_count`].some((s) => name === current!.name + s)));
    if (!ok) throw new Error(`sample outside its family (${current?.name ?? "none"}): ${line}`);
    current!.samples.push({ name, labels: parseLabels(m[2] ?? "", line), value: parseValue(m[3]!, line) });
  }
  return families;
}

/** The samples of `family` (any of its lines) whose labels include `labels`. */
export function samplesOf(
  families: Map<string, Family>,
  family: string,
  labels: Readonly<Record<string, string>> = {},
  name = family,
): Sample[] {
  return (families.get(family)?.samples ?? []).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
}

/** The sum of the values of {@link samplesOf}. */
export function sumOf(
  families: Map<string, Family>,
  family: string,
  labels: Readonly<Record<string, string>> = {},
  name = family,
): number {
  return samplesOf(families, family, labels, name).reduce((sum, s) => sum + s.value, 0);
}
