// WebGL2 drawing of up to a few million items, each a point (a completion) or a segment from a
// pair's rejected to its chosen completion. Positions stay on the GPU as given (float32, already
// normalised by Python); a colour is one byte per item looked up in a 256-entry palette texture,
// so a new colouring uploads n bytes and a hidden legend entry is one palette write.
//
// Draw order is an index buffer (Python's order, else a seeded shuffle so that no category is
// always on top). While the user pans or zooms on a slow GPU (or on a CPU rasteriser such as
// SwiftShader), only a uniform random share of the items is drawn (`lod`); the full frame follows
// when the interaction pauses.

const POINT_VS = `#version 300 es
in vec2 a_pos;
in float a_code;
uniform vec2 u_center;
uniform vec2 u_scale;
uniform float u_size;
uniform float u_alpha;
uniform vec4 u_solid;
uniform sampler2D u_palette;
out vec4 v_colour;
void main() {
  gl_Position = vec4((a_pos - u_center) * u_scale, 0.0, 1.0);
  vec4 c = texelFetch(u_palette, ivec2(int(a_code), 0), 0);
  if (u_solid.a > 0.0 && c.a > 0.0) c = u_solid;
  v_colour = vec4(c.rgb, c.a * u_alpha);
  gl_PointSize = c.a > 0.0 ? u_size : 0.0;
}`;

const POINT_FS = `#version 300 es
precision mediump float;
in vec4 v_colour;
uniform float u_round;
out vec4 o;
void main() {
  if (u_round > 0.5) {
    vec2 d = gl_PointCoord - 0.5;
    if (dot(d, d) > 0.25) discard;
  }
  o = vec4(v_colour.rgb * v_colour.a, v_colour.a);
}`;

// Segments: vertex 2i is pair i's rejected end, 2i+1 its chosen end; the line fades in towards the
// chosen end, so the direction of a label reads without arrowheads.
const LINE_VS = `#version 300 es
in vec2 a_pos;
in float a_code;
uniform vec2 u_center;
uniform vec2 u_scale;
uniform float u_alpha;
uniform vec4 u_solid;
uniform sampler2D u_palette;
out vec4 v_colour;
void main() {
  gl_Position = vec4((a_pos - u_center) * u_scale, 0.0, 1.0);
  vec4 c = texelFetch(u_palette, ivec2(int(a_code), 0), 0);
  if (u_solid.a > 0.0 && c.a > 0.0) c = u_solid;
  float chosenEnd = float(gl_VertexID % 2);
  v_colour = vec4(c.rgb, c.a * u_alpha * mix(0.12, 1.0, chosenEnd));
}`;

const LINE_FS = `#version 300 es
precision mediump float;
in vec4 v_colour;
out vec4 o;
void main() { o = vec4(v_colour.rgb * v_colour.a, v_colour.a); }`;

function compile(gl, vertex, fragment) {
  const program = gl.createProgram();
  for (const [type, source] of [[gl.VERTEX_SHADER, vertex], [gl.FRAGMENT_SHADER, fragment]]) {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
    gl.attachShader(program, shader);
  }
  gl.bindAttribLocation(program, 0, "a_pos");
  gl.bindAttribLocation(program, 1, "a_code");
  gl.linkProgram(program);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
  const uniforms = {};
  for (const name of ["u_center", "u_scale", "u_size", "u_alpha", "u_solid", "u_palette", "u_round"]) {
    uniforms[name] = gl.getUniformLocation(program, name);
  }
  return { program, uniforms };
}

/** A seeded random permutation of 0..n-1 (xorshift32; the same draw order on every visit). */
export function shuffled(n, seed = 12345) {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  let s = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    const j = s % (i + 1);
    const t = out[i]; out[i] = out[j]; out[j] = t;
  }
  return out;
}

export class Renderer {
  /** Throws when the browser offers no WebGL2 context (the caller falls back). */
  constructor(canvas) {
    const gl = canvas.getContext("webgl2", { antialias: false, premultipliedAlpha: true, alpha: true });
    if (!gl) throw new Error("this browser offers no WebGL2");
    this.gl = gl;
    this.canvas = canvas;
    this.points = compile(gl, POINT_VS, POINT_FS);
    this.lines = compile(gl, LINE_VS, LINE_FS);
    this.position = gl.createBuffer();
    this.codes = gl.createBuffer();
    this.vertexCodes = gl.createBuffer();
    this.palette = gl.createTexture();
    this.buffers = {};  // name → {buffer, count}
    this.n = 0;
    this.mode = "points";
    this.lodFraction = 1;
    gl.bindTexture(gl.TEXTURE_2D, this.palette);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    this.pointVao = gl.createVertexArray();
    this.dotVao = gl.createVertexArray();
    this.lineVao = gl.createVertexArray();
  }

  /** mode "points": xy has 2 floats per item; "segments": 4 (rejected x, y, chosen x, y). */
  setScene(mode, xy, order) {
    const gl = this.gl;
    this.mode = mode;
    this.n = mode === "points" ? xy.length / 2 : xy.length / 4;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.position);
    gl.bufferData(gl.ARRAY_BUFFER, xy, gl.STATIC_DRAW);
    // points (or, for segments, a dot at each pair's chosen end) read one code per item
    gl.bindVertexArray(this.pointVao);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.position);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 2, gl.FLOAT, false, mode === "points" ? 8 : 16, mode === "points" ? 0 : 8);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.codes);
    gl.enableVertexAttribArray(1);
    gl.vertexAttribPointer(1, 1, gl.UNSIGNED_BYTE, false, 0, 0);
    if (mode === "segments") {
      gl.bindVertexArray(this.lineVao);
      gl.bindBuffer(gl.ARRAY_BUFFER, this.position);
      gl.enableVertexAttribArray(0);
      gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 8, 0);
      gl.bindBuffer(gl.ARRAY_BUFFER, this.vertexCodes);
      gl.enableVertexAttribArray(1);
      gl.vertexAttribPointer(1, 1, gl.UNSIGNED_BYTE, false, 0, 0);
    }
    gl.bindVertexArray(null);
    this.order = order && order.length === this.n ? order : shuffled(this.n);
    this.rank = null;
    this._indexBuffer("all", this.order);
    this.setLod(this.lodFraction, true);
  }

  setCodes(codes) {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.codes);
    gl.bufferData(gl.ARRAY_BUFFER, codes, gl.STATIC_DRAW);
    if (this.mode === "segments") {
      const twice = new Uint8Array(2 * codes.length);
      for (let i = 0; i < codes.length; i++) { twice[2 * i] = codes[i]; twice[2 * i + 1] = codes[i]; }
      gl.bindBuffer(gl.ARRAY_BUFFER, this.vertexCodes);
      gl.bufferData(gl.ARRAY_BUFFER, twice, gl.STATIC_DRAW);
    }
  }

  /** rgba: Uint8Array(256 * 4). */
  setPalette(rgba) {
    const gl = this.gl;
    gl.bindTexture(gl.TEXTURE_2D, this.palette);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, 256, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, rgba);
  }

  /** The items drawn on top, larger and outlined (a selection, the hovered or clicked pair). */
  setOverlay(name, items) {
    this._indexBuffer(name, items && items.length ? Uint32Array.from(items) : null);
  }

  /** Draw a uniform random `fraction` of the items while interacting (1 = all). */
  setLod(fraction, force = false) {
    fraction = Math.min(1, Math.max(0.005, fraction));
    if (!force && Math.abs(fraction - this.lodFraction) < 0.05 * this.lodFraction) return;
    this.lodFraction = fraction;
    if (fraction >= 1 || this.n === 0) { this._indexBuffer("lod", null); return; }
    if (!this.rank) {  // each item's position in a second shuffle: a uniform sample by threshold
      const perm = shuffled(this.n, 777);
      this.rank = new Uint32Array(this.n);
      for (let i = 0; i < this.n; i++) this.rank[perm[i]] = i;
    }
    const limit = Math.ceil(fraction * this.n), kept = new Uint32Array(limit);
    let m = 0;
    for (let i = 0; i < this.n && m < limit; i++) {
      const item = this.order[i];
      if (this.rank[item] < limit) kept[m++] = item;
    }
    this._indexBuffer("lod", kept.subarray(0, m));
  }

  _indexBuffer(name, items) {
    const gl = this.gl;
    const old = this.buffers[name];
    if (!items) { if (old) gl.deleteBuffer(old.buffer); delete this.buffers[name]; return; }
    const buffer = old ? old.buffer : gl.createBuffer();
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, buffer);
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, items, gl.STATIC_DRAW);
    let lines = null;
    if (this.mode === "segments") {
      const pairs = new Uint32Array(2 * items.length);
      for (let i = 0; i < items.length; i++) { pairs[2 * i] = 2 * items[i]; pairs[2 * i + 1] = 2 * items[i] + 1; }
      lines = old && old.lines ? old.lines : gl.createBuffer();
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, lines);
      gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, pairs, gl.STATIC_DRAW);
    } else if (old && old.lines) {
      gl.deleteBuffer(old.lines);
    }
    this.buffers[name] = { buffer, lines, count: items.length };
  }

  /** One frame. Returns the milliseconds it took, the GPU included when `measure` (a 1-pixel read waits for it). */
  draw(camera, { lod = false, size = 3, alpha = 0.8, fade = 1, overlays = [], measure = true } = {}) {
    const gl = this.gl, started = performance.now();
    // Device pixels, capped: a point as large as the canvas costs a software rasteriser (SwiftShader)
    // a full-canvas fill per point, minutes for 100k points.
    const dpr = camera.dpr, px = (s) => Math.min(48, s * dpr);
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.palette);
    const base = (lod && this.buffers.lod) || this.buffers.all;
    if (base) this._pass(camera, base, { size: px(size), alpha: alpha * fade, round: size >= 3 });
    for (const { name, size: overlaySize, solid, alpha: overlayAlpha = 1 } of overlays) {
      const buffer = this.buffers[name];
      if (buffer) this._pass(camera, buffer, { size: px(overlaySize), alpha: overlayAlpha, solid, round: true });
    }
    if (measure) gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));
    return performance.now() - started;
  }

  _pass(camera, buffer, { size, alpha, solid = null, round }) {
    const gl = this.gl, [sx, sy] = camera.clipScale();
    const set = ({ uniforms }) => {
      gl.uniform2f(uniforms.u_center, camera.cx, camera.cy);
      gl.uniform2f(uniforms.u_scale, sx, sy);
      gl.uniform1f(uniforms.u_alpha, alpha);
      gl.uniform4fv(uniforms.u_solid, solid || [0, 0, 0, 0]);
      gl.uniform1i(uniforms.u_palette, 0);
    };
    if (this.mode === "segments" && buffer.lines && !solid) {
      gl.useProgram(this.lines.program);
      set(this.lines);
      gl.bindVertexArray(this.lineVao);
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, buffer.lines);
      gl.drawElements(gl.LINES, 2 * buffer.count, gl.UNSIGNED_INT, 0);
    }
    gl.useProgram(this.points.program);
    set(this.points);
    gl.uniform1f(this.points.uniforms.u_size, this.mode === "segments" && !solid ? Math.max(1, size * 0.8) : size);
    gl.uniform1f(this.points.uniforms.u_round, round ? 1 : 0);
    gl.bindVertexArray(this.pointVao);
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, buffer.buffer);
    gl.drawElements(gl.POINTS, buffer.count, gl.UNSIGNED_INT, 0);
    gl.bindVertexArray(null);
  }
}
