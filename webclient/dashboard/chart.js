// The throughput chart: tasks per second over the last five minutes, drawn
// on a canvas from the ring of samples.

import { chartPoints } from './ring.js';
import { formatRate } from './format.js';

export const SPAN_MS = 5 * 60 * 1000;

export class ThroughputChart {
  constructor(canvas, ring) {
    this.canvas = canvas;
    this.ring = ring;
    this.draws = 0;
  }

  // draw repaints the whole chart; it is cheap (≤ 300 points) and runs at
  // most once per render tick.
  draw(now) {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const cssW = c.clientWidth || 600;
    const cssH = c.clientHeight || 160;
    const w = Math.round(cssW * dpr);
    const h = Math.round(cssH * dpr);
    if (c.width !== w || c.height !== h) {
      c.width = w;
      c.height = h;
    }
    const ctx = c.getContext('2d');
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const padL = 44;
    const padB = 18;
    const padT = 8;
    const plotW = Math.max(10, cssW - padL - 6);
    const plotH = Math.max(10, cssH - padB - padT);
    const samples = this.ring.since(now - SPAN_MS);
    const { points, top } = chartPoints(samples, now, SPAN_MS, plotW, plotH);

    const style = getComputedStyle(c);
    const fg = style.getPropertyValue('--chart-fg').trim() || '#2a7';
    const grid = style.getPropertyValue('--chart-grid').trim() || '#ddd';
    const text = style.getPropertyValue('--chart-text').trim() || '#666';

    ctx.strokeStyle = grid;
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (const f of [0, 0.5, 1]) {
      const y = padT + Math.round(plotH * f) + 0.5;
      ctx.moveTo(padL, y);
      ctx.lineTo(padL + plotW, y);
    }
    ctx.stroke();

    ctx.fillStyle = text;
    ctx.font = '11px system-ui, sans-serif';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    ctx.fillText(formatRate(top), padL - 6, padT);
    ctx.fillText(formatRate(top / 2), padL - 6, padT + plotH / 2);
    ctx.fillText('0', padL - 6, padT + plotH);
    ctx.textBaseline = 'alphabetic';
    ctx.textAlign = 'left';
    ctx.fillText('5 min ago', padL, cssH - 4);
    ctx.textAlign = 'right';
    ctx.fillText('now', padL + plotW, cssH - 4);

    if (points.length > 0) {
      ctx.save();
      ctx.translate(padL, padT);
      ctx.beginPath();
      ctx.moveTo(points[0].x, plotH);
      for (const p of points) ctx.lineTo(p.x, p.y);
      ctx.lineTo(points[points.length - 1].x, plotH);
      ctx.closePath();
      ctx.globalAlpha = 0.18;
      ctx.fillStyle = fg;
      ctx.fill();
      ctx.globalAlpha = 1;
      ctx.beginPath();
      points.forEach((p, i) => (i === 0 ? ctx.moveTo(p.x, p.y) : ctx.lineTo(p.x, p.y)));
      ctx.strokeStyle = fg;
      ctx.lineWidth = 1.5;
      ctx.stroke();
      ctx.restore();
    }
    this.draws++;
  }
}
