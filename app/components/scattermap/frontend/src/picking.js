// Which item is under the cursor, and which items a lasso or a box encloses. A uniform grid over
// the data box (built once per scene, O(n)) answers hover and click; a lasso tests every visible
// entry against the polygon after a bounding-box check (a million entries in ~0.1 s).
//
// Entries are positions: one per item for points, two per item for segments (entry 2i is pair
// i's rejected end, 2i+1 its chosen end), so a pair is picked by either of its ends.

const LO = -1.05, SPAN = 2.1;

export class Picker {
  constructor(mode, xy) {
    this.mode = mode;
    this.xy = xy;
    this.entries = xy.length / 2;
    const g = Math.max(16, Math.min(2048, Math.round(Math.sqrt(this.entries / 8))));
    this.g = g;
    const cellOf = new Uint32Array(this.entries), start = new Uint32Array(g * g + 1);
    for (let e = 0; e < this.entries; e++) {
      const c = this._cell(xy[2 * e], xy[2 * e + 1]);
      cellOf[e] = c;
      start[c + 1]++;
    }
    for (let c = 0; c < g * g; c++) start[c + 1] += start[c];
    const fill = start.slice(0, g * g), sorted = new Uint32Array(this.entries);
    for (let e = 0; e < this.entries; e++) sorted[fill[cellOf[e]]++] = e;
    this.start = start;
    this.sorted = sorted;
  }

  _axis(v) {
    return Math.min(this.g - 1, Math.max(0, Math.floor(((v - LO) / SPAN) * this.g)));
  }

  _cell(x, y) {
    return this._axis(y) * this.g + this._axis(x);
  }

  owner(entry) {
    return this.mode === "points" ? entry : entry >> 1;
  }

  /** The visible item nearest to (x, y) within radius r (data units), or -1. */
  nearest(x, y, r, visible) {
    const x0 = this._axis(x - r), x1 = this._axis(x + r), y0 = this._axis(y - r), y1 = this._axis(y + r);
    let best = -1, bestD = r * r, checked = 0;
    for (let cy = y0; cy <= y1; cy++) {
      for (let cx = x0; cx <= x1; cx++) {
        const c = cy * this.g + cx;
        for (let k = this.start[c]; k < this.start[c + 1]; k++) {
          const e = this.sorted[k], item = this.owner(e);
          if (++checked > 200000) return best;  // a pathological pile-up: answer with what we have
          if (!visible(item)) continue;
          const dx = this.xy[2 * e] - x, dy = this.xy[2 * e + 1] - y, d = dx * dx + dy * dy;
          if (d <= bestD) { bestD = d; best = item; }
        }
      }
    }
    return best;
  }

  /** Items with an entry inside `polygon` ([[x, y], ...] in data units). */
  inPolygon(polygon, visible) {
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const [px, py] of polygon) {
      minX = Math.min(minX, px); maxX = Math.max(maxX, px);
      minY = Math.min(minY, py); maxY = Math.max(maxY, py);
    }
    const m = polygon.length, xs = Float64Array.from(polygon, (p) => p[0]), ys = Float64Array.from(polygon, (p) => p[1]);
    return this._collect(minX, minY, maxX, maxY, visible, (x, y) => {
      let inside = false;
      for (let i = 0, j = m - 1; i < m; j = i++) {
        if ((ys[i] > y) !== (ys[j] > y) && x < ((xs[j] - xs[i]) * (y - ys[i])) / (ys[j] - ys[i]) + xs[i]) inside = !inside;
      }
      return inside;
    });
  }

  inBox(x0, y0, x1, y1, visible) {
    return this._collect(Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1), visible, () => true);
  }

  _collect(minX, minY, maxX, maxY, visible, test) {
    const items = this.mode === "points" ? this.entries : this.entries / 2;
    const hit = new Uint8Array(items);
    const cx0 = this._axis(minX), cx1 = this._axis(maxX), cy0 = this._axis(minY), cy1 = this._axis(maxY);
    for (let cy = cy0; cy <= cy1; cy++) {
      for (let cx = cx0; cx <= cx1; cx++) {
        const c = cy * this.g + cx;
        for (let k = this.start[c]; k < this.start[c + 1]; k++) {
          const e = this.sorted[k], item = this.owner(e);
          if (hit[item] || !visible(item)) continue;
          const x = this.xy[2 * e], y = this.xy[2 * e + 1];
          if (x >= minX && x <= maxX && y >= minY && y <= maxY && test(x, y)) hit[item] = 1;
        }
      }
    }
    let count = 0;
    for (let i = 0; i < items; i++) count += hit[i];
    const out = new Uint32Array(count);
    for (let i = 0, m = 0; i < items; i++) if (hit[i]) out[m++] = i;
    return out;
  }
}
