// A small SVG line chart (no dependencies): panels side by side sharing the x axis values, each with
// its series, axes, ticks and a legend. For the bench report the README shows.

export interface Series {
  readonly name: string;
  readonly color: string;
  readonly points: readonly (readonly [number, number])[];
  /** Drawn dashed (e.g. an ideal line). */
  readonly dashed?: boolean;
}

export interface Panel {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
}

const W = 460;
const H = 320;
const M = { left: 64, right: 16, top: 36, bottom: 48 };

/** Round numbers for an axis from 0 to at least `max`. */
function ticks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = 0; v <= max + step * 0.999; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const label = (v: number) => (v >= 10_000 ? `${v / 1000}k` : String(v));

function panelSvg(p: Panel, x0: number): string {
  const all = p.series.flatMap((s) => s.points);
  const xt = ticks(Math.max(...all.map(([x]) => x)));
  const yt = ticks(Math.max(...all.map(([, y]) => y)));
  const xMax = xt[xt.length - 1]!;
  const yMax = yt[yt.length - 1]!;
  const iw = W - M.left - M.right;
  const ih = H - M.top - M.bottom;
  const sx = (x: number) => x0 + M.left + (x / xMax) * iw;
  const sy = (y: number) => M.top + ih - (y / yMax) * ih;
  const parts: string[] = [];
  parts.push(`<text x="${x0 + W / 2}" y="20" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`);
  for (const t of yt) {
    parts.push(
      `<line x1="${sx(0)}" x2="${sx(xMax)}" y1="${sy(t)}" y2="${sy(t)}" stroke="#e4e4e4"/>`,
      `<text x="${sx(0) - 6}" y="${sy(t) + 4}" text-anchor="end">${label(t)}</text>`,
    );
  }
  for (const t of xt) {
    parts.push(`<text x="${sx(t)}" y="${sy(0) + 16}" text-anchor="middle">${label(t)}</text>`);
  }
  parts.push(
    `<line x1="${sx(0)}" x2="${sx(xMax)}" y1="${sy(0)}" y2="${sy(0)}" stroke="#333"/>`,
    `<line x1="${sx(0)}" x2="${sx(0)}" y1="${sy(0)}" y2="${sy(yMax)}" stroke="#333"/>`,
    `<text x="${x0 + M.left + iw / 2}" y="${H - 10}" text-anchor="middle">${esc(p.xLabel)}</text>`,
    `<text transform="translate(${x0 + 16},${M.top + ih / 2}) rotate(-90)" text-anchor="middle">${esc(p.yLabel)}</text>`,
  );
  p.series.forEach((s, i) => {
    const d = s.points.map(([x, y], k) => `${k ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
    parts.push(
      `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,4"' : ""}/>`,
    );
    for (const [x, y] of s.points) {
      if (!s.dashed)
        parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
    }
    const ly = M.top + 8 + i * 16;
    parts.push(
      `<line x1="${sx(0) + 10}" x2="${sx(0) + 30}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,4"' : ""}/>`,
      `<text x="${sx(0) + 36}" y="${ly + 4}">${esc(s.name)}</text>`,
    );
  });
  return parts.join("\n");
}

/** The panels side by side as one SVG document, with a caption line under them. */
export function lineChartsSvg(panels: readonly Panel[], caption: string): string {
  const width = W * panels.length;
  const height = H + 24;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...panels.map((p, i) => panelSvg(p, i * W)),
    `<text x="${width / 2}" y="${height - 6}" text-anchor="middle" fill="#555">${esc(caption)}</text>`,
    "</svg>",
    "",
  ].join("\n");
}
