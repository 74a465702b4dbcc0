// Pan and zoom over data coordinates that the Python side normalised into the box [-1, 1]²
// (aspect kept). zoom 1 fits that box into the canvas; `pixelsPerUnit` converts.

export class Camera {
  constructor() {
    this.reset();
    this.width = 0;   // CSS pixels; 0 until the frame has a size (nothing is drawn before)
    this.height = 0;
    this.dpr = 1;     // device pixels per CSS pixel of the canvas
  }

  reset() {
    this.cx = 0;
    this.cy = 0;
    this.zoom = 0.95;
  }

  resize(width, height, dpr = 1) {
    this.width = Math.max(0, width);
    this.height = Math.max(0, height);
    this.dpr = dpr;
  }

  get sized() {
    return this.width > 0 && this.height > 0;
  }

  get pixelsPerUnit() {
    return (this.zoom * Math.min(this.width, this.height)) / 2;
  }

  /** Clip-space scale per axis (the shaders' u_scale). */
  clipScale() {
    const k = this.pixelsPerUnit;
    return [(2 * k) / this.width, (2 * k) / this.height];
  }

  toData(px, py) {
    const k = this.pixelsPerUnit;
    return [this.cx + (px - this.width / 2) / k, this.cy - (py - this.height / 2) / k];
  }

  toScreen(x, y) {
    const k = this.pixelsPerUnit;
    return [this.width / 2 + (x - this.cx) * k, this.height / 2 - (y - this.cy) * k];
  }

  pan(dx, dy) {
    const k = this.pixelsPerUnit;
    this.cx -= dx / k;
    this.cy += dy / k;
  }

  /** Zoom by `factor`, keeping the data point under (px, py) where it is. */
  zoomAt(px, py, factor) {
    const [x, y] = this.toData(px, py);
    this.zoom = Math.min(5000, Math.max(0.2, this.zoom * factor));
    const [x2, y2] = this.toData(px, py);
    this.cx += x - x2;
    this.cy += y - y2;
  }

  state() {
    return { cx: this.cx, cy: this.cy, zoom: this.zoom };
  }

  restore(state) {
    if (state && [state.cx, state.cy, state.zoom].every(Number.isFinite)) {
      this.cx = state.cx;
      this.cy = state.cy;
      this.zoom = state.zoom;
    }
  }
}
