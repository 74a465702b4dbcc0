// alignscope's map: every completion (or every pair, as a segment from its rejected to its chosen
// completion) drawn with WebGL2 from binary arguments, with pan/zoom, hover texts, a clickable
// legend that hides categories, lasso and box selection. Python owns the state: a selection or a
// click is sent back as an event, and the next render message carries the selection to show.
//
// Arguments (binary ones are little-endian byte strings):
//   mode "points" | "segments"; xy float32 (2 or 4 per item, normalised into [-1, 1]²);
//   codes uint8 per item (a palette index; 255 = no value); ids uint32 (each item's pair);
//   sides uint8 (0 rejected, 1 chosen, 2 a pair-level point) — both absent when `layout` says them
//   ("completion": rows 0..N-1 chosen, N..2N-1 rejected; "pair": row i is pair i);
//   order uint32 (draw order, optional);
//   legend {kind: "categorical", title, entries: [{label, colour, count}]}
//        | {kind: "continuous", title, stops: [hex...], min, max, missing};
//   selected uint32 items; focus [items]; texts {base, size} | null; height; data_key,
//   colour_key, selection_key (what changed); view_key (the camera is remembered per view);
//   regions [{x, y, text, count}]: labels drawn over the map at (x, y), in the same coordinates;
//   contours [{share, lines: [[x0, y0, x1, y1, ...]]}]: density lines, in the same coordinates.
// Every string from the data set reaches the page through textContent, never as HTML.

import { Camera } from "./camera.js";
import { Picker } from "./picking.js";
import { Renderer } from "./renderer.js";
import { listen, setComponentValue, setFrameHeight } from "./streamlit.js";
import { Texts } from "./texts.js";

const BAR = 38;
const timings = {};  // milliseconds since the frame's script started, per step (data-timings)
function mark(step) {
  if (!(step in timings)) timings[step] = Math.round(performance.now());
  document.body.dataset.timings = JSON.stringify(timings);
}
mark("script");
const HEX = /^#[0-9a-fA-F]{6}$/;
const token = Math.random().toString(36).slice(2);
let eventCount = 0;

const state = {
  mode: "points", n: 0, xy: null, codes: null, ids: null, sides: null, legend: null, hidden: new Set(),
  selected: null, selectedMask: null, focus: [], hover: -1, tool: "pan", keys: {}, texts: null,
  viewKey: null, fullMs: 0, draws: 0, dark: false, height: 560, regions: [], regionsKey: "", contoursKey: "",
};

// ------------------------------------------------------------------------------------------ DOM
function element(tag, attributes = {}, parent = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  if (parent) parent.appendChild(node);
  return node;
}

const bar = element("div", { id: "bar" }, document.body);
const tools = {};
for (const [tool, label, help] of [
  ["pan", "Pan", "Drag to move, wheel to zoom; click a point to open its pair"],
  ["lasso", "Lasso", "Draw around points to select them (Shift-drag does it in any mode)"],
  ["box", "Box", "Drag a rectangle to select the points inside"],
]) {
  tools[tool] = element("button", { type: "button", "data-tool": tool, title: help, "aria-pressed": "false", text: label }, bar);
  tools[tool].addEventListener("click", () => setTool(tool));
}
const resetButton = element("button", { type: "button", id: "reset", title: "Fit every point in view", text: "Reset view" }, bar);
const clearButton = element("button", { type: "button", id: "clear", title: "Clear the selection (Esc)", text: "Clear selection" }, bar);
const status = element("span", { id: "status", role: "status" }, bar);
const stage = element("div", { id: "stage" }, document.body);
const canvas = element("canvas", { id: "map", "aria-label": "map of the data set" }, stage);
const SVG = "http://www.w3.org/2000/svg";
const ink = document.createElementNS(SVG, "svg");
ink.setAttribute("id", "ink");
stage.appendChild(ink);
const inkPath = document.createElementNS(SVG, "path");
ink.appendChild(inkPath);
const density = document.createElementNS(SVG, "svg");
density.setAttribute("id", "density");
density.setAttribute("aria-hidden", "true");
stage.appendChild(density);
const densityGroup = document.createElementNS(SVG, "g");
density.appendChild(densityGroup);
const regionBox = element("div", { id: "regions", "aria-hidden": "true" }, stage);
const legendBox = element("div", { id: "legend" }, stage);
const tip = element("div", { id: "tip", role: "tooltip" }, stage);
const message = element("div", { id: "message" }, stage);

const camera = new Camera();
let renderer = null, picker = null, texts = null;
try {
  renderer = new Renderer(canvas);
} catch (error) {
  message.textContent = `This browser cannot draw the WebGL map (${error.message}); the app switches to the Plotly map.`;
  setTimeout(() => send({ kind: "no_webgl", reason: String(error.message || error) }), 0);
}

function send(event) {
  setComponentValue({ ...event, scene: state.keys.data || null, token, n: ++eventCount });
}

function setTool(tool) {
  state.tool = tool;
  for (const [name, button] of Object.entries(tools)) button.setAttribute("aria-pressed", String(name === tool));
  stage.dataset.tool = tool;
}
setTool("pan");

// ------------------------------------------------------------------------------------- drawing
let frameRequested = false, wantLod = false, fullTimer = null;

function sizes() {
  const n = Math.max(1, state.n);
  const base = n <= 20000 ? 5 : n <= 200000 ? 3.5 : n <= 1000000 ? 2.5 : 2;
  const size = base * Math.min(3, Math.max(1, camera.zoom ** 0.4));
  const alpha = n <= 50000 ? 0.85 : n <= 300000 ? 0.6 : 0.45;
  return { size, alpha };
}

function requestDraw(lod = false) {
  wantLod = lod;
  if (!frameRequested) {
    frameRequested = true;
    requestAnimationFrame(frame);
  }
  clearTimeout(fullTimer);
  if (lod) fullTimer = setTimeout(() => requestDraw(false), 220);
}

function frame() {
  frameRequested = false;
  if (!renderer || !state.xy || !camera.sized) return;  // drawn again once the frame has a size
  const { size, alpha } = sizes();
  const selecting = state.selected && state.selected.length > 0;
  const outline = state.dark ? [0.95, 0.95, 0.95, 1] : [0.08, 0.08, 0.08, 1];
  const overlays = [];
  // An outline marks a few thousand selected points; a large selection is marked by fading the rest.
  if (selecting && state.selected.length <= 20000) overlays.push({ name: "selected", size: size + 2.5, solid: outline });
  if (selecting) overlays.push({ name: "selected", size: size + 1 });
  if (state.focus.length) overlays.push({ name: "focus", size: size + 7, solid: [1, 0.55, 0, 1] }, { name: "focus", size: size + 3 });
  if (state.hover >= 0) overlays.push({ name: "hover", size: size + 5, solid: outline }, { name: "hover", size: size + 2.5 });
  const lod = wantLod && renderer.lodFraction < 1;
  // Only the first full frame of a scene (or size) waits for the GPU, to learn how long a full
  // frame takes; later frames do not block the page while the GPU draws.
  const measure = !lod && !state.calibrated;
  const ms = renderer.draw(camera, { lod, size, alpha, fade: selecting ? 0.22 : 1, overlays, measure });
  placeOverlays();
  if (measure) {
    state.calibrated = true;
    state.fullMs = ms;
    // A full frame slower than ~35 ms: draw a share while moving, so that panning stays fluid.
    renderer.setLod(ms > 35 ? 25 / ms : 1);
    document.body.dataset.fullMs = String(Math.round(ms));
  }
  if (!lod) {
    mark(state.draws ? "drawn again" : "drawn");
    state.draws += 1;
    document.body.dataset.drawn = String(state.draws);
  }
  showStatus(lod);
}

// Region labels follow the camera: one translated node per label (textContent: dataset words, never HTML).
function setRegions(regions) {
  const key = JSON.stringify(regions || []);
  if (key === state.regionsKey) return;
  state.regionsKey = key;
  regionBox.replaceChildren();
  state.regions = (Array.isArray(regions) ? regions : [])
    .filter((r) => r && Number.isFinite(r.x) && Number.isFinite(r.y) && typeof r.text === "string" && r.text)
    .sort((a, b) => (Number(b.count) || 0) - (Number(a.count) || 0))  // the largest regions win overlaps
    .map((r) => ({ x: r.x, y: r.y, w: 0, h: 0, node: element("div", { class: "region", text: r.text }, regionBox) }));
  document.body.dataset.regions = String(state.regions.length);
}

// Density lines: one path per share, drawn in data coordinates; one transform follows the camera.
function setContours(contours) {
  const key = JSON.stringify(contours || []);
  if (key === state.contoursKey) return;
  state.contoursKey = key;
  densityGroup.replaceChildren();
  let lines = 0;
  for (const contour of Array.isArray(contours) ? contours : []) {
    const parts = [];
    for (const line of Array.isArray(contour.lines) ? contour.lines : []) {
      if (!Array.isArray(line) || line.length < 4 || !line.every(Number.isFinite)) continue;
      let d = `M${line[0]} ${line[1]}`;
      for (let i = 2; i + 1 < line.length; i += 2) d += `L${line[i]} ${line[i + 1]}`;
      parts.push(d);
      lines += 1;
    }
    if (!parts.length) continue;
    for (const kind of ["halo", "line"]) {  // a light halo under a dark line: readable over any colour
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("d", parts.join(""));
      path.setAttribute("class", kind);
      path.setAttribute("data-share", String(contour.share));
      densityGroup.appendChild(path);
    }
  }
  document.body.dataset.contours = String(lines);
}

// The overlays follow the camera: the density lines by one transform, each region label by its own.
function placeOverlays() {
  const k = camera.pixelsPerUnit;
  densityGroup.setAttribute("transform",
    `matrix(${k} 0 0 ${-k} ${camera.width / 2 - camera.cx * k} ${camera.height / 2 + camera.cy * k})`);
  // A label that would cover a larger region's label (or leave the map) is hidden until there is room.
  const placed = [];
  for (const region of state.regions) {
    if (!region.w) [region.w, region.h] = [region.node.offsetWidth, region.node.offsetHeight];
    const [px, py] = camera.toScreen(region.x, region.y);
    const box = { left: px - region.w / 2, top: py - region.h / 2, right: px + region.w / 2, bottom: py + region.h / 2 };
    const inside = box.left >= 0 && box.top >= 0 && box.right <= camera.width && box.bottom <= camera.height;
    const free = placed.every((o) => box.right < o.left || box.left > o.right || box.bottom < o.top || box.top > o.bottom);
    region.node.style.visibility = inside && free ? "visible" : "hidden";
    if (inside && free) placed.push(box);
    region.node.style.transform = `translate(${box.left.toFixed(1)}px, ${box.top.toFixed(1)}px)`;
  }
  document.body.dataset.regionsShown = String(placed.length);
}

function showStatus(lod) {
  const noun = state.mode === "segments" ? "pairs" : "points";
  const parts = [`${state.n.toLocaleString("en-US")} ${noun}`];
  if (state.selected && state.selected.length) parts.push(`${state.selected.length.toLocaleString("en-US")} selected`);
  if (state.hidden.size) parts.push(`${state.hidden.size} hidden in the legend`);
  parts.push(lod ? `moving: ${Math.round(renderer.lodFraction * 100)}% drawn` : `a full frame takes ${Math.round(state.fullMs)} ms`);
  status.textContent = parts.join(" · ");
  document.body.dataset.items = String(state.n);
  document.body.dataset.selected = String(state.selected ? state.selected.length : 0);
}

function resize() {
  const width = stage.clientWidth, height = stage.clientHeight;
  const dpr = Math.min(2, window.devicePixelRatio || 1);
  canvas.width = Math.max(1, Math.round(width * dpr));
  canvas.height = Math.max(1, Math.round(height * dpr));
  ink.setAttribute("width", String(width));
  ink.setAttribute("height", String(height));
  camera.resize(width, height, canvas.width / Math.max(1, width));
  state.calibrated = false;
  requestDraw(false);
}
new ResizeObserver(resize).observe(stage);

// ------------------------------------------------------------------------------------- colours
function rgb(hex) {
  return HEX.test(hex) ? [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)) : [128, 128, 128];
}

function palette() {
  const out = new Uint8Array(256 * 4), legend = state.legend || { kind: "categorical", entries: [] };
  const put = (code, [r, g, b], a) => out.set([r, g, b, a], 4 * code);
  for (let code = 0; code < 256; code++) put(code, [150, 150, 150], 255);
  if (legend.kind === "continuous") {
    const stops = (legend.stops || []).map(rgb);
    for (let code = 0; code < 255; code++) {
      const t = (code / 254) * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(t)), f = t - i;
      put(code, [0, 1, 2].map((c) => Math.round(stops[i][c] * (1 - f) + stops[i + 1][c] * f)), 255);
    }
    put(255, [190, 190, 190], state.hidden.has(255) ? 0 : 140);
  } else {
    (legend.entries || []).forEach((entry, code) => put(code, rgb(entry.colour), state.hidden.has(code) ? 0 : 255));
  }
  return out;
}

function visible(item) {
  return !state.hidden.has(state.codes[item]);
}

function describeCode(code) {
  const legend = state.legend || {};
  if (legend.kind === "continuous") {
    if (code === 255) return `${legend.title}: no value`;
    const value = legend.min + (code / 254) * (legend.max - legend.min);
    return `${legend.title} ≈ ${Number(value.toPrecision(3))}`;
  }
  const entry = (legend.entries || [])[code];
  return entry ? `${legend.title}: ${entry.label}` : "";
}

function drawLegend() {
  legendBox.replaceChildren();
  const legend = state.legend;
  if (!legend) return;
  element("div", { class: "title", text: legend.title || "" }, legendBox);
  if (legend.kind === "continuous") {
    const stops = (legend.stops || []).filter((s) => HEX.test(s));
    const ramp = element("div", { class: "ramp" }, legendBox);
    ramp.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
    const ends = element("div", { class: "ends" }, legendBox);
    element("span", { text: Number(Number(legend.min).toPrecision(3)).toString() }, ends);
    element("span", { text: Number(Number(legend.max).toPrecision(3)).toString() }, ends);
    if (legend.note) element("div", { class: "note", text: legend.note }, legendBox);
    return;
  }
  (legend.entries || []).forEach((entry, code) => {
    const row = element("button", { type: "button", class: "entry", title: "Click to hide or show", "data-code": String(code) }, legendBox);
    const swatch = element("span", { class: "swatch" }, row);
    swatch.style.background = HEX.test(entry.colour) ? entry.colour : "#999999";
    element("span", { class: "label", text: String(entry.label) }, row);
    element("span", { class: "count", text: Number(entry.count || 0).toLocaleString("en-US") }, row);
    row.setAttribute("aria-pressed", String(!state.hidden.has(code)));
    row.addEventListener("click", () => {
      if (state.hidden.has(code)) state.hidden.delete(code); else state.hidden.add(code);
      renderer && renderer.setPalette(palette());
      drawLegend();
      requestDraw(false);
    });
  });
}

// ------------------------------------------------------------------------------------ tooltips
let tipFor = -1;

function showTip(item, px, py) {
  tipFor = item;
  if (item < 0) { tip.style.display = "none"; return; }
  const pair = state.ids[item];
  const side = state.mode === "segments" ? "pair" : ["rejected", "chosen", "pair"][state.sides[item]] || "";
  tip.replaceChildren();
  element("div", { class: "head", text: `#${pair + 1} · ${side} · ${describeCode(state.codes[item])}` }, tip);
  const body = element("div", { class: "body", text: texts && texts.base ? "…" : "" }, tip);
  tip.style.display = "block";
  const width = stage.clientWidth, height = stage.clientHeight;
  tip.style.left = `${Math.min(px + 14, Math.max(4, width - 380))}px`;
  tip.style.top = `${py + 14 + 160 > height ? Math.max(4, py - 170) : py + 14}px`;
  if (!texts) return;
  texts.pair(pair).then((row) => {
    if (tipFor !== item) return;
    if (!row) {  // the shard is still being written: ask again while the pointer stays
      body.textContent = "";
      setTimeout(() => { if (tipFor === item) showTip(item, px, py); }, 1000);
      return;
    }
    const [prompt, chosen, rejected] = row;
    const blocks = [["PROMPT", prompt]];
    if (state.mode === "segments" || side === "pair") blocks.push(["CHOSEN", chosen], ["REJECTED", rejected]);
    else blocks.push([side.toUpperCase(), side === "chosen" ? chosen : rejected]);
    body.replaceChildren();
    for (const [name, text] of blocks) {
      const block = element("div", { class: "block" }, body);
      element("b", { text: `${name}: ` }, block);
      element("span", { text: String(text) }, block);
    }
  });
}

function setHover(item, px, py) {
  if (item !== state.hover) {
    state.hover = item;
    renderer.setOverlay("hover", item >= 0 ? [item] : null);
    requestDraw(false);
  }
  showTip(item, px, py);
}

// ---------------------------------------------------------------------------------- interaction
let drag = null;

function local(event) {
  const rect = stage.getBoundingClientRect();
  return [event.clientX - rect.left, event.clientY - rect.top];
}

function pickAt(px, py) {
  if (!picker || !camera.sized) return -1;
  const [x, y] = camera.toData(px, py);
  return picker.nearest(x, y, 8 / camera.pixelsPerUnit, visible);
}

stage.addEventListener("pointerdown", (event) => {
  if (event.button !== 0 || !state.xy) return;
  const [px, py] = local(event);
  const tool = event.shiftKey ? "lasso" : state.tool;
  drag = { tool, x: px, y: py, lastX: px, lastY: py, moved: false, path: [[px, py]] };
  stage.setPointerCapture(event.pointerId);
  setHover(-1, 0, 0);
});

stage.addEventListener("pointermove", (event) => {
  const [px, py] = local(event);
  if (!drag) {
    if (state.xy) setHover(pickAt(px, py), px, py);
    return;
  }
  if (Math.hypot(px - drag.x, py - drag.y) > 3) drag.moved = true;
  if (drag.tool === "pan") {
    camera.pan(px - drag.lastX, py - drag.lastY);
    requestDraw(true);
  } else if (drag.tool === "lasso") {
    const [lx, ly] = drag.path[drag.path.length - 1];
    if (Math.hypot(px - lx, py - ly) >= 3) drag.path.push([px, py]);
    inkPath.setAttribute("d", `M${drag.path.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join("L")}Z`);
  } else {
    const [x0, y0] = [Math.min(drag.x, px), Math.min(drag.y, py)];
    inkPath.setAttribute("d", `M${x0},${y0}h${Math.abs(px - drag.x)}v${Math.abs(py - drag.y)}h${-Math.abs(px - drag.x)}Z`);
  }
  drag.lastX = px;
  drag.lastY = py;
});

function endDrag(event) {
  if (!drag) return;
  const [px, py] = local(event), current = drag;
  drag = null;
  inkPath.setAttribute("d", "");
  if (!current.moved) {
    const item = pickAt(px, py);
    if (item >= 0) send({ kind: "click", item });
    return;
  }
  if (current.tool === "pan") {
    requestDraw(false);
    remember();
    return;
  }
  let items;
  if (current.tool === "lasso") {
    if (current.path.length < 3) return;
    items = picker.inPolygon(current.path.map(([x, y]) => camera.toData(x, y)), visible);
  } else {
    const [x0, y0] = camera.toData(current.x, current.y), [x1, y1] = camera.toData(px, py);
    items = picker.inBox(x0, y0, x1, y1, visible);
  }
  setSelection(items);
  requestDraw(false);
  send({ kind: "select", how: current.tool, count: items.length, items: toBase64(items) });
}
stage.addEventListener("pointerup", endDrag);
stage.addEventListener("pointercancel", () => { drag = null; inkPath.setAttribute("d", ""); });
stage.addEventListener("pointerleave", () => { if (!drag) setHover(-1, 0, 0); });

stage.addEventListener("wheel", (event) => {
  event.preventDefault();
  const [px, py] = local(event);
  camera.zoomAt(px, py, Math.exp(-event.deltaY / 400));
  setHover(-1, 0, 0);
  requestDraw(true);
  clearTimeout(rememberTimer);
  rememberTimer = setTimeout(remember, 400);
}, { passive: false });

resetButton.addEventListener("click", () => { camera.reset(); remember(); requestDraw(false); });
clearButton.addEventListener("click", () => {
  setSelection(new Uint32Array(0));
  requestDraw(false);
  send({ kind: "clear" });
});
window.addEventListener("keydown", (event) => { if (event.key === "Escape") clearButton.click(); });

let rememberTimer = null;
function remember() {
  try { if (state.viewKey) localStorage.setItem(`alignscope-map:${state.viewKey}`, JSON.stringify(camera.state())); } catch (e) { /* storage off */ }
}

function recall() {
  try {
    const stored = state.viewKey && localStorage.getItem(`alignscope-map:${state.viewKey}`);
    if (stored) { camera.restore(JSON.parse(stored)); return; }
  } catch (e) { /* storage off */ }
  camera.reset();
}

function setSelection(items) {
  state.selected = items;
  renderer.setOverlay("selected", items && items.length ? items : null);
}

function toBase64(u32) {
  const bytes = new Uint8Array(u32.buffer, u32.byteOffset, u32.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

// For scripts driving the page (the browser test): where an item is drawn, which item is at a spot.
window.scattermap = {
  screenOf: (item) => (state.xy && item >= 0 && item < state.n
    ? camera.toScreen(state.xy[(state.mode === "points" ? 2 : 4) * item + (state.mode === "points" ? 0 : 2)],
      state.xy[(state.mode === "points" ? 2 : 4) * item + (state.mode === "points" ? 1 : 3)]).map((v, i) => v + (i ? BAR : 0))
    : null),
  itemAt: (px, py) => pickAt(px, py - BAR),
};

// ------------------------------------------------------------------------------------- renders
function bytes(value) {
  if (!value) return null;
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return null;
}

function typed(value, Type) {
  const raw = bytes(value);
  if (!raw) return null;
  const aligned = raw.byteOffset % Type.BYTES_PER_ELEMENT === 0 ? raw : raw.slice();
  return new Type(aligned.buffer, aligned.byteOffset, Math.floor(aligned.byteLength / Type.BYTES_PER_ELEMENT));
}

listen((args, theme) => {
  document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
  state.dark = Boolean(theme && theme.base === "dark");
  document.body.classList.toggle("dark", state.dark);
  if (theme && theme.font) document.body.style.fontFamily = theme.font;
  const height = Number(args.height) || 560;
  if (height !== state.height || !document.body.dataset.sized) {
    state.height = height;
    stage.style.height = `${height}px`;
    document.body.dataset.sized = "1";
    setFrameHeight(height + BAR + 4);
  }
  if (!renderer) return;
  const newScene = args.data_key !== state.keys.data;
  if (newScene) {
    state.mode = args.mode === "segments" ? "segments" : "points";
    state.xy = typed(args.xy, Float32Array);
    state.n = state.xy ? state.xy.length / (state.mode === "points" ? 2 : 4) : 0;
    state.ids = typed(args.ids, Uint32Array);
    state.sides = bytes(args.sides);
    if (!state.ids) {  // alignscope's layout: rows 0..N-1 are the pairs' chosen completions, N..2N-1 rejected
      const pairs = args.layout === "completion" ? state.n / 2 : state.n;
      state.ids = new Uint32Array(state.n);
      for (let i = 0; i < state.n; i++) state.ids[i] = i % pairs;
      if (args.layout === "completion") state.sides = Uint8Array.from({ length: state.n }, (_, i) => (i < pairs ? 1 : 0));
    }
    state.sides = state.sides || new Uint8Array(state.n).fill(2);
    mark("render");
    renderer.setScene(state.mode, state.xy, typed(args.order, Uint32Array));
    mark("uploaded");
    picker = new Picker(state.mode, state.xy);
    mark("indexed");
    state.calibrated = false;
    state.viewKey = args.view_key || null;
    state.hover = -1;
    recall();
  }
  if (newScene || args.colour_key !== state.keys.colour) {
    state.codes = bytes(args.codes) || new Uint8Array(state.n);
    if (JSON.stringify(args.legend) !== JSON.stringify(state.legend)) state.hidden = new Set();
    state.legend = args.legend || null;
    renderer.setCodes(state.codes);
    renderer.setPalette(palette());
    drawLegend();
  }
  if (newScene || args.selection_key !== state.keys.selection) setSelection(typed(args.selected, Uint32Array));
  state.focus = Array.isArray(args.focus) ? args.focus.filter((i) => Number.isInteger(i) && i >= 0 && i < state.n) : [];
  renderer.setOverlay("focus", state.focus);
  const textsSpec = args.texts && args.texts.base ? `${args.texts.base}|${args.texts.size}` : "";
  if (textsSpec !== state.keys.texts) texts = textsSpec ? new Texts(args.texts.base, Number(args.texts.size) || 500) : null;
  state.keys = { data: args.data_key, colour: args.colour_key, selection: args.selection_key, texts: textsSpec };
  setRegions(args.regions);
  setContours(args.contours);
  requestDraw(false);
});
