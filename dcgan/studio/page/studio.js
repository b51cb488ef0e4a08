// dcgan studio: the page. Plain DOM and fetch; every picture and number comes from the studio's /api/*.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { runs: [], run: null, tab: "run", walk: null, walkTimer: null, frame: 0 };
const COLOURS = ["#2f6fdf", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#1098ad", "#5c940d"];

function showError(message) { $("error").textContent = message || ""; }

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function query(params) {
  return new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null)).toString();
}

// ---------------------------------------------------------------- the runs

async function refreshRuns() {
  try {
    const data = await getJSON("/api/runs");
    state.runs = data.runs;
    $("root").textContent = data.root;
    drawRunTable();
    const current = state.run && state.runs.find((r) => r.id === state.run.id);
    const moved = current && (current.steps.join() !== state.run.steps.join() || (current.status === "training" && state.tab === "run"));
    if (moved) selectRun(current.id, true);
  } catch (e) { showError("runs: " + e.message); }
}

function bestText(run) {
  return run.best ? `${run.best.metric.toUpperCase()} ${run.best.value.toFixed(2)}` : "";
}

function drawRunTable() {
  const body = $("runs").tBodies[0];
  body.replaceChildren(...state.runs.map((run) => {
    const row = document.createElement("tr");
    row.dataset.run = run.id;
    row.title = run.problem || run.id;
    if (state.run && state.run.id === run.id) row.classList.add("selected");
    const cells = [run.id, run.dataset || "", run.mode || "", run.step, run.status, bestText(run)];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      if (i === 0) td.className = "run-name";
      if (i === 4) { const s = document.createElement("span"); s.className = `status status-${text}`; s.textContent = text; td.append(s); }
      else td.textContent = text;
      row.append(td);
    });
    row.addEventListener("click", () => selectRun(run.id));
    return row;
  }));
  $("no-runs").hidden = state.runs.length > 0;
}

async function selectRun(id, refreshed = false) {
  try {
    const run = await getJSON("/api/run?" + query({ run: id }));
    state.run = run;
    drawRunTable();
    $("run-title").textContent = run.id;
    fillSteps(run, refreshed);
    fillClasses(run);
    fillCompareWith(run);
    drawRunView(run);
    if (!refreshed || state.tab !== "run") redraw();
    showError("");
  } catch (e) { showError(e.message); }
}

function fillSteps(run, keep) {
  const select = $("step"), before = select.value;
  const options = [...run.steps].reverse().map((s, i) => new Option(i === 0 ? `${s} (latest)` : `${s}`, i === 0 ? "" : s));
  if (run.best_checkpoint !== null) options.push(new Option(`${run.best_checkpoint} (best FID)`, "best"));
  select.replaceChildren(...options);
  if (keep && [...select.options].some((o) => o.value === before)) select.value = before;
}

function fillClasses(run) {
  const classes = run.classes || [];
  $("class-picker").hidden = !run.conditional;
  $("walk-class-picker").hidden = !run.conditional;
  $("classes").replaceChildren(...classes.map((name, i) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox"; box.value = i; box.checked = true;
    box.addEventListener("change", redraw);
    label.append(box, " " + name);
    return label;
  }));
  $("walk-class-a").replaceChildren(...classes.map((name, i) => new Option(name, i)));
  $("walk-class-b").replaceChildren(new Option("same class", ""), ...classes.map((name, i) => new Option(name, i)));
}

function fillCompareWith(run) {
  const others = state.runs.filter((r) => r.id !== run.id && r.steps.length && r.latent_dim === run.latent_dim);
  const select = $("compare-with"), before = select.value;
  select.replaceChildren(...others.map((r) => new Option(r.id, r.id)));
  if (others.some((r) => r.id === before)) select.value = before;
}

// ---------------------------------------------------------------- the Run view

function drawRunView(run) {
  const best = run.best ? `, best ${bestText(run)} at step ${run.best.step} (${run.best.what})` : "";
  $("run-meta").textContent = `${run.dataset}, ${run.image_size}x${run.image_size}x${run.channels}, ${run.mode}` +
    `${run.conditional ? ", conditional" : ""}; step ${run.step}${run.target_steps ? " of " + run.target_steps : ""}, ` +
    `${run.status}${best}`;
  $("config").textContent = run.config;
  lineChart($("loss-chart"), run.curves.losses, {});
  lineChart($("score-chart"), run.curves.scores, { empty: "no evaluations (train.eval_every)" });
  if (run.grid) {
    $("newest-grid").src = "/api/picture?" + query({ run: run.id, name: run.grid, t: run.step });
    $("newest-caption").textContent = "newest grid: " + run.grid;
  } else { $("newest-grid").removeAttribute("src"); $("newest-caption").textContent = "no grid yet"; }
}

function lineChart(svg, series, { empty = "nothing yet", width = 480, height = 240, logY = false } = {}) {
  const names = Object.keys(series).filter((k) => series[k].length);
  const NS = "http://www.w3.org/2000/svg";
  const el = (tag, attrs, text) => { const e = document.createElementNS(NS, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; return e; };
  svg.replaceChildren();
  if (!names.length) { svg.append(el("text", { x: 20, y: 30 }, empty)); return; }
  const pts = names.flatMap((n) => series[n]);
  const fy = (v) => (logY ? Math.log10(Math.max(v, 1e-12)) : v);
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => fy(p[1]));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs) || 1], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const L = 46, R = 10, T = 10, B = 24, W = width - L - R, H = height - T - B;
  const sx = (x) => L + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * W, sy = (y) => T + H - (y1 > y0 ? (fy(y) - y0) / (y1 - y0) : 0.5) * H;
  svg.append(el("line", { x1: L, y1: T + H, x2: L + W, y2: T + H, class: "axis" }), el("line", { x1: L, y1: T, x2: L, y2: T + H, class: "axis" }));
  const fmt = (v) => (logY ? "1e" + v.toFixed(1) : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
  svg.append(el("text", { x: 2, y: T + 8 }, fmt(y1)), el("text", { x: 2, y: T + H }, fmt(y0)),
    el("text", { x: L, y: height - 6 }, String(x0)), el("text", { x: L + W - 40, y: height - 6 }, String(x1)));
  names.forEach((name, i) => {
    const colour = COLOURS[i % COLOURS.length];
    svg.append(el("polyline", { points: series[name].map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" "), stroke: colour }));
    svg.append(el("text", { x: width - R - 8, y: T + 14 + 14 * i, fill: colour, "text-anchor": "end" }, name));
  });
}

// ---------------------------------------------------------------- generator controls shared by the views

function generatorParams() {
  return { run: state.run.id, step: $("step").value, copy: $("copy").value, truncation: $("truncation").value };
}

function selectedClasses() {
  if (!state.run.conditional) return undefined;
  const picked = [...$("classes").querySelectorAll("input:checked")].map((b) => b.value);
  return picked.join(",") || "all";
}

// One request in flight per picture; a control that moves meanwhile asks again once it is back, so a
// dragged slider never queues a backlog and the last position is always drawn.
function drawer(draw) {
  let busy = false, again = false;
  return async function run() {
    if (busy) { again = true; return; }
    busy = true;
    try { await draw(); } catch (e) { showError(e.message); }
    busy = false;
    if (again) { again = false; run(); }
  };
}

async function fetchPicture(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error((await response.json()).error || response.statusText);
  return { blob: await response.blob(), about: JSON.parse(response.headers.get("X-Dcgan") || "{}") };
}

function showPicture(img, blob, key) {
  return new Promise((resolve) => {
    const old = img.src;
    img.onload = () => { if (old.startsWith("blob:")) URL.revokeObjectURL(old); img.dataset.query = key; resolve(); };
    img.src = URL.createObjectURL(blob);
  });
}

function scaleFor(size, target = 96) { return Math.max(1, Math.floor(target / size)); }

const drawGrid = drawer(async () => {
  if (!state.run) return;
  const params = { ...generatorParams(), seeds: $("seeds").value.trim(), classes: selectedClasses() };
  const key = query(params);
  const started = performance.now();
  const { blob, about } = await fetchPicture("/api/grid.png?" + key);
  await showPicture($("grid"), blob, key);
  const img = $("grid");
  img.style.width = img.naturalWidth * scaleFor(about.size) + "px";
  $("grid-caption").textContent = `${about.images} images from ${about.generator}, drawn in ${Math.round(performance.now() - started)} ms`;
  $("download-png").href = "/api/grid.png?" + query({ ...params, download: 1 });
  $("download-npz").href = "/api/grid.npz?" + key;
  showError("");
});

const drawWalk = drawer(async () => {
  if (!state.run) return;
  const classA = $("walk-class-a").value, classB = $("walk-class-b").value;
  const byClass = state.run.conditional && classB !== "";
  $("walk-b-label").hidden = byClass;
  const params = { ...generatorParams(), frames: $("walk-frames").value,
    seeds: byClass ? $("walk-a").value : `${$("walk-a").value},${$("walk-b").value}`,
    classes: state.run.conditional ? (byClass ? `${classA},${classB}` : classA) : undefined };
  const key = query(params);
  const { blob, about } = await fetchPicture("/api/walk.png?" + key);
  const strip = new Image();
  await showPicture(strip, blob, key);
  state.walk = { strip, frames: about.frames, size: about.size, key };
  $("walk-strip").src = strip.src;
  $("walk-frame").max = about.frames - 1;
  state.frame = Math.min(state.frame, about.frames - 1);
  $("walk-caption").textContent = `${about.frames} frames from ${about.generator}` +
    (byClass ? `: seed ${$("walk-a").value} from one class to the other` : ": a spherical walk between the two seeds");
  drawFrame();
  showError("");
});

function drawFrame() {
  const walk = state.walk, canvas = $("walk-canvas");
  if (!walk) return;
  const scale = Math.max(1, Math.floor(256 / walk.size));
  canvas.width = walk.size; canvas.height = walk.size;
  canvas.style.width = walk.size * scale + "px";
  const ctx = canvas.getContext("2d");
  ctx.drawImage(walk.strip, state.frame * walk.size, 0, walk.size, walk.size, 0, 0, walk.size, walk.size);
  canvas.dataset.frame = state.frame;
  canvas.dataset.query = walk.key;
  $("walk-frame").value = state.frame;
  $("walk-frame-value").textContent = state.frame;
}

function playWalk(on) {
  clearInterval(state.walkTimer);
  state.walkTimer = null;
  $("walk-play").textContent = on ? "pause" : "play";
  if (on) state.walkTimer = setInterval(() => {
    if (!state.walk || state.tab !== "walk") return;
    state.frame = (state.frame + 1) % state.walk.frames;
    drawFrame();
  }, 100);  // the pace of `dcgan sample --interpolate`'s GIF
}

// ---------------------------------------------------------------- Upsampling and Compare

async function inspectRun() {
  const params = { run: state.run.id, step: $("step").value, copy: $("copy").value };
  $("inspect-run").disabled = true;
  $("inspect-table").hidden = false;
  $("inspect-table").textContent = "inspecting (a few seconds the first time; then kept in RUN/inspect/) ...";
  try {
    const report = await getJSON("/api/inspect?" + query(params));
    $("inspect-table").textContent = `${report.generator}, ${report.n} latents\n\n${report.table}`;
    const { blob } = await fetchPicture("/api/inspect.png?" + query(params));
    await showPicture($("inspect-figure"), blob, query(params));
  } catch (e) { $("inspect-table").textContent = ""; showError(e.message); }
  $("inspect-run").disabled = false;
}

async function drawModes() {
  const comparison = state.run && state.run.comparison;
  $("modes").hidden = !comparison;
  if (!comparison) return;
  const data = await getJSON("/api/comparison?" + query({ id: comparison }));
  const runs = data.runs.filter((r) => r.steps.length);
  $("modes-title").textContent = `comparison ${comparison}: the same seeds through each mode's run`;
  const spectra = {};
  const panels = await Promise.all(runs.map(async (run) => {
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    img.className = "pixels";
    const caption = document.createElement("figcaption");
    const s = run.scores;
    const fid = typeof s.fid === "number" ? `FID ${s.fid.toFixed(2)}` : bestText(run);
    const speed = typeof s.images_per_s === "number" ? `, ${Math.round(s.images_per_s)} img/s` : "";
    caption.textContent = `${run.mode} (${run.name}) ${fid}${speed}`;
    figure.append(caption, img);
    const params = { run: run.id, seeds: "0-15", truncation: $("truncation").value,
      classes: run.conditional ? "0" : undefined };
    const { blob, about } = await fetchPicture("/api/grid.png?" + query(params));
    await showPicture(img, blob, query(params));
    img.style.width = img.naturalWidth * scaleFor(about.size, 64) + "px";
    const spectrum = await getJSON("/api/spectrum?" + query({ run: run.id }));
    spectra[run.mode] = spectrum.generated.map((v, i) => [i, v]).slice(1);
    if (spectrum.real && !spectra.real) spectra.real = spectrum.real.map((v, i) => [i, v]).slice(1);
    return figure;
  }));
  $("mode-panels").replaceChildren(...panels);
  lineChart($("spectrum-chart"), spectra, { width: 720, height: 260, logY: true });
}

const drawCompare = drawer(async () => {
  const other = $("compare-with").value;
  if (!state.run || !other) { $("compare-scores").replaceChildren(); return; }
  const seeds = $("compare-seeds").value;
  const rows = [];
  for (const [id, img, caption] of [[state.run.id, "compare-a", "compare-a-caption"], [other, "compare-b", "compare-b-caption"]]) {
    const run = state.runs.find((r) => r.id === id);
    const params = { run: id, seeds, truncation: $("truncation").value, classes: run.conditional ? "0" : undefined };
    const { blob, about } = await fetchPicture("/api/grid.png?" + query(params));
    await showPicture($(img), blob, query(params));
    $(img).style.width = $(img).naturalWidth * scaleFor(about.size, 64) + "px";
    $(caption).textContent = `${id}: ${about.generator}`;
    rows.push([id, await getJSON("/api/scores?" + query({ run: id }))]);
  }
  const keys = [...new Set(rows.flatMap(([, s]) => Object.keys(s).filter((k) => typeof s[k] === "number")))];
  const table = $("compare-scores");
  const cell = (tag, text) => { const c = document.createElement(tag); c.textContent = text; return c; };
  const value = (s, k) => (typeof s[k] === "number" ? (Number.isInteger(s[k]) ? String(s[k]) : s[k].toFixed(4)) : "");
  if (!keys.length) {
    table.replaceChildren(...rows.map(([id, s]) => { const tr = document.createElement("tr"); tr.append(cell("td", id), cell("td", s.best ? bestText(s) + " at step " + s.best.step : "no score yet")); return tr; }));
    return;
  }
  const head = document.createElement("tr");  // one row per score, one column per run
  head.append(cell("th", "score"), ...rows.map(([id]) => cell("th", id)));
  table.replaceChildren(head, ...keys.map((k) => { const tr = document.createElement("tr"); tr.append(cell("td", k), ...rows.map(([, s]) => cell("td", value(s, k)))); return tr; }));
});

// ---------------------------------------------------------------- tabs and wiring

function redraw() {
  if (!state.run) return;
  if (state.tab === "sample") drawGrid();
  if (state.tab === "walk") drawWalk();
  if (state.tab === "upsampling") drawModes().catch((e) => showError(e.message));
  if (state.tab === "compare") drawCompare();
}

function showTab(tab) {
  state.tab = tab;
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === tab));
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== "view-" + tab; });
  $("generator-controls").hidden = tab === "run";
  redraw();
}

document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
$("truncation").addEventListener("input", () => { $("truncation-value").textContent = Number($("truncation").value).toFixed(2); redraw(); });
for (const id of ["step", "copy"]) $(id).addEventListener("change", redraw);
$("seeds").addEventListener("input", drawGrid);
$("random-seeds").addEventListener("click", () => {
  const start = Math.floor(Math.random() * 1e6), count = state.run && state.run.conditional ? 8 : 64;
  $("seeds").value = `${start}-${start + count - 1}`;
  drawGrid();
});
for (const id of ["walk-a", "walk-b", "walk-frames", "walk-class-a", "walk-class-b"]) $(id).addEventListener("change", drawWalk);
$("walk-play").addEventListener("click", () => playWalk(state.walkTimer === null));
$("walk-frame").addEventListener("input", () => { playWalk(false); state.frame = Number($("walk-frame").value); drawFrame(); });
$("inspect-run").addEventListener("click", inspectRun);
$("compare-with").addEventListener("change", drawCompare);
$("compare-seeds").addEventListener("change", drawCompare);

showTab("run");
playWalk(true);
refreshRuns().then(() => { if (state.runs.length && !state.run) selectRun((state.runs.find((r) => r.steps.length) || state.runs[0]).id); });
setInterval(refreshRuns, 3000);  // a run that is training shows its new checkpoints
