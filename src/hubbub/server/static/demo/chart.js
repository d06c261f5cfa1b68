// A small scrolling line chart on a canvas, drawn by our own code (no library).
// chart.push(time, [v1, v2, ...]) adds a point per series; the canvas's data-points attribute
// counts the points drawn so far (the browser tests read it).

export class LineChart {
  constructor(canvas, { series, window = 60, min = 0, max = null, unit = "" }) {
    this.canvas = canvas;
    this.series = series; // [{ name, color }]
    this.window = window; // seconds shown
    this.min = min;
    this.max = max; // null: scale to the data
    this.unit = unit;
    this.points = []; // [time (s), [values]]
    this.drawn = 0;
  }

  push(time, values) {
    this.points.push([time, values]);
    const oldest = time - this.window;
    while (this.points.length && this.points[0][0] < oldest) this.points.shift();
    this.drawn += 1;
    this.canvas.dataset.points = String(this.drawn);
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = c.clientWidth || 600;
    const height = c.clientHeight || 160;
    if (c.width !== width * ratio) { c.width = width * ratio; c.height = height * ratio; }
    const g = c.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const pad = { l: 44, r: 8, t: 8, b: 18 };
    const w = width - pad.l - pad.r, h = height - pad.t - pad.b;
    let max = this.max;
    if (max === null) {
      max = 1;
      for (const [, vs] of this.points) for (const v of vs) if (v > max) max = v;
      max *= 1.15;
    }
    const now = this.points.length ? this.points[this.points.length - 1][0] : 0;
    const x = (t) => pad.l + w - ((now - t) / this.window) * w;
    const y = (v) => pad.t + h - ((v - this.min) / (max - this.min || 1)) * h;
    g.strokeStyle = "#dde2e6"; g.fillStyle = "#5b6670"; g.font = "11px system-ui"; g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const v = this.min + ((max - this.min) * i) / 4;
      g.beginPath(); g.moveTo(pad.l, y(v)); g.lineTo(pad.l + w, y(v)); g.stroke();
      g.fillText(formatValue(v) + this.unit, 2, y(v) + 4);
    }
    this.series.forEach((s, i) => {
      g.strokeStyle = s.color; g.lineWidth = 2; g.beginPath();
      this.points.forEach(([t, vs], j) => (j ? g.lineTo(x(t), y(vs[i])) : g.moveTo(x(t), y(vs[i]))));
      g.stroke();
      g.fillStyle = s.color; g.fillText(s.name, pad.l + 6 + i * 110, height - 4);
    });
  }
}

export function formatValue(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
  return v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1);
}
