// The mgrpo dashboard's page: fetches the server's views and draws them with uPlot. The
// server downsamples and smooths; the page only draws. Server-sent events (/events) say when
// something changed; the page then fetches the view again.
"use strict";

const params = new URLSearchParams(location.search);
const cookie = params.get("cookie");
let current = Number(params.get("run") || 0);
const charts = {};
const WIDTH = 520, HEIGHT = 240;
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

function url(path) {
  if (!cookie) return path;
  return path + (path.includes("?") ? "&" : "?") + "cookie=" + encodeURIComponent(cookie);
}

async function get(path) {
  const r = await fetch(url(path));
  if (!r.ok) throw new Error(path + ": " + r.status + " " + (await r.text()));
  return r.json();
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? "" : String(k)));
  return e;
}

// Numbers for people: 3 significant digits, thousands grouped.
function fmt(v) {
  if (v == null || Number.isNaN(v)) return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return v.toLocaleString("en");
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  return v.toPrecision(3);
}

function bytes(v) {
  if (v == null) return "–";
  const u = ["B", "kB", "MB", "GB"]; let i = 0;
  while (Math.abs(v) >= 1000 && i < u.length - 1) { v /= 1000; i++; }
  return v.toFixed(i ? 1 : 0) + " " + u[i];
}

// Draws (or redraws) a chart; counts the non-null points it drew in data-points.
function draw(id, title, xs, series, opts) {
  const host = document.getElementById(id);
  if (charts[id]) { charts[id].destroy(); delete charts[id]; }
  host.replaceChildren();
  let n = 0;
  for (const s of series) n += s.data.filter(v => v != null).length;
  host.setAttribute("data-points", String(n));
  if (!xs.length) { host.append(el("p", { class: "muted" }, title + ": no data yet")); return; }
  const o = {
    title, width: WIDTH, height: HEIGHT,
    scales: { x: { time: false } },
    series: [{ label: "step" }].concat(series.map(s => Object.assign({ spanGaps: true }, s.opts))),
    bands: (opts && opts.bands) || [],
    axes: [{ label: "step" }, {}],
    legend: { live: false },
  };
  const u = new uPlot(o, [xs].concat(series.map(s => s.data)), host);
  // Band edges draw no line and need no legend entry.
  const hidden = new Set(series.filter(s => s.hidden).map(s => s.opts.label));
  for (const row of u.root.querySelectorAll(".u-legend .u-series")) {
    const label = row.querySelector(".u-label");
    if (label && hidden.has(label.textContent)) row.style.display = "none";
  }
  charts[id] = u;
}

// Merges point sets onto one x axis (uPlot shares x among series).
function align(sets) {
  const xs = [...new Set(sets.flatMap(s => s.x))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  return {
    xs, cols: sets.map(s => {
      const col = new Array(xs.length).fill(null);
      s.x.forEach((x, i) => { col[at.get(x)] = s.y[i]; });
      return col;
    })
  };
}

const line = (label, color, width, dash) => ({ label, stroke: color, width: width || 1.5, dash, points: { show: false } });
const faint = (label, color) => ({ label, stroke: color + "55", width: 1, points: { show: false } });
const dots = (label, color) => ({ label, stroke: color, width: 0, paths: () => null, points: { show: true, size: 7, fill: color } });

function drawRun(v) {
  const c = v.curves, s = c.series;
  const evals = v.evals.filter(e => e.split === "dev");
  const test = (v.test && v.test.checkpoints) || [];
  const sets = [
    { x: c.x, y: s.reward_smooth || [] }, { x: c.x, y: s.reward || [] },
  ];
  let a = align(sets);
  draw("chart-reward", "reward (smoothed; raw faint)", a.xs, [
    { data: a.cols[0], opts: line("reward (smoothed)", COLORS[0], 2) },
    { data: a.cols[1], opts: faint("reward (raw)", COLORS[0]) },
  ]);
  a = align([
    { x: c.x, y: s.accuracy_smooth || [] }, { x: c.x, y: s.accuracy || [] },
    { x: evals.map(e => e.step), y: evals.map(e => e.accuracy) },
    { x: test.map(t => t.version), y: test.map(t => t.accuracy) },
  ]);
  draw("chart-accuracy", "accuracy: train (smoothed), dev and test", a.xs, [
    { data: a.cols[0], opts: line("train (smoothed)", COLORS[2], 2) },
    { data: a.cols[1], opts: faint("train (raw)", COLORS[2]) },
    { data: a.cols[2], opts: dots("dev", COLORS[1]) },
    { data: a.cols[3], opts: dots("test", COLORS[3]) },
  ]);
  const kinds = [...new Set(evals.flatMap(e => Object.keys(e.by_kind)))].sort();
  a = align(kinds.map(k => ({ x: evals.map(e => e.step), y: evals.map(e => e.by_kind[k] ?? null) })));
  draw("chart-kind", "dev accuracy by question kind", a.xs,
    kinds.map((k, i) => ({ data: a.cols[i], opts: Object.assign(line(k, COLORS[i % COLORS.length]), { points: { show: true } }) })));
  const keys = ["calls_per_rollout", "format_rate", "sub_format_rate"].filter(k => s[k]);
  draw("chart-calls", "calls per rollout, format rates", c.x,
    keys.map((k, i) => ({ data: s[k], opts: line(k, COLORS[(i + 4) % COLORS.length]) })));

  const state = document.getElementById("state");
  state.textContent = v.state; state.className = "badge " + v.state;
  document.getElementById("run-title").textContent = "Run " + v.label;
  document.getElementById("run-facts").textContent =
    `${v.variant || "?"} · seed ${v.seed ?? "?"} · ${fmt(c.steps)} of ${fmt(v.planned_steps)} steps` +
    (v.best ? ` · best dev ${fmt(v.best.dev_accuracy)} at step ${v.best.step}` : "") + ` · ${v.dir}`;

  const roles = document.querySelector("#roles tbody");
  roles.replaceChildren(...v.roles.map(r => el("tr", { "data-role": r.role, "data-version": r.version ?? "", "data-generation": r.generation ?? "", "data-source": r.source },
    el("td", {}, r.role), el("td", {}, fmt(r.version)), el("td", {}, fmt(r.generation)), el("td", {}, r.source),
    el("td", {}, fmt(r.loss)), el("td", {}, fmt(r.clip_fraction)), el("td", {}, fmt(r.approx_kl)), el("td", {}, fmt(r.ref_kl)),
    el("td", {}, fmt(r.format_rate)), el("td", {}, fmt(r.grad_norm)), el("td", {}, r.last_swap || "never"))));

  const nodes = document.querySelector("#nodes tbody");
  nodes.replaceChildren(...(v.nodes.length ? v.nodes.map(n => el("tr", { class: n.up ? "" : "down", "data-node": n.node, "data-up": String(n.up) },
    el("td", {}, n.node), el("td", {}, n.up ? "up" : "DOWN"), el("td", {}, n.pid ?? "–"),
    el("td", {}, n.roles ? Object.entries(n.roles).map(([k, c]) => k + "×" + c).join(", ") : "–"),
    el("td", {}, bytes(n.link_bytes)), el("td", {}, n.last_seen_s == null ? "never" : fmt(n.last_seen_s) + " s ago"))) :
    [el("tr", {}, el("td", { colSpan: 6, class: "muted" }, v.state === "live" ? "asking…" : "no process runs this run (read from disk)"))]));

  const sp = v.split, total = sp.step_time_s || 0;
  const parts = Object.entries(sp.parts || {}).filter(([, t]) => t != null);
  const bar = el("div", { class: "bar", id: "split-bar" }, ...parts.map(([k, t], i) =>
    el("div", { title: `${k}: ${fmt(t)} s`, style: `width:${total ? 100 * t / total : 0}%;background:${COLORS[i % COLORS.length]}` }, k)));
  document.getElementById("split").replaceChildren(
    el("p", {}, `step ${fmt(total)} s · ${fmt(sp.tokens_per_s)} tokens/s · ${fmt(sp.calls_per_rollout)} calls per rollout (means of the last 20 steps)`),
    bar,
    el("p", {}, parts.map(([k, t]) => `${k} ${fmt(t)} s`).join(" · ")),
    el("p", {}, `cross-node ${bytes(sp.cross_node_bytes)} per step (statistics ${bytes(sp.stats_bytes)}) vs trajectories ${bytes(sp.trajectory_bytes)}`));

  const tl = document.getElementById("timeline");
  tl.replaceChildren(...(v.timeline.length ? v.timeline.map(m => el("li", { "data-kind": m.kind, "data-step": m.step },
    el("span", { class: "kind kind-" + m.kind }, m.kind), ` step ${m.step}: ${m.detail}`)) : [el("li", { class: "muted" }, "no swaps, restarts or outages")]));

  const t = document.getElementById("test");
  t.replaceChildren(test.length ? el("table", {}, el("tr", {}, el("th", {}, "checkpoint"), el("th", {}, "version"), el("th", {}, "accuracy")),
    ...test.map(c => el("tr", {}, el("td", {}, c.label), el("td", {}, c.version), el("td", {}, fmt(c.accuracy))))) :
    el("p", { class: "muted" }, "no test summary yet (written when a run ends)"));

  const stepInput = document.getElementById("group-step");
  if (stepInput.value === "" && c.x.length) stepInput.value = c.x[c.x.length - 1];
}

async function drawGroup() {
  const step = document.getElementById("group-step").value, query = document.getElementById("group-query").value || 0;
  const host = document.getElementById("group");
  try {
    const g = await get(`/api/run/${current}/group?step=${step}&query=${query}`);
    const r = g.group;
    const q = g.question;
    host.replaceChildren(
      el("p", { id: "group-question" }, q ? `${q.kind} · ${g.question_id}: ${q.text} — gold: ${q.answer}${q.facts ? ` (world variant ${q.facts})` : ""}` : g.question_id,
        ` (step ${g.step}, query ${g.query} of ${g.queries}; R_M mean ${fmt(r.main_mean)} std ${fmt(r.main_std)}; R_S mean ${fmt(r.sub_mean)} std ${fmt(r.sub_std)})`),
      el("table", { id: "group-rollouts" },
        el("tr", {}, ...["rollout", "format", "correct", "R_M", "A_M", "calls", "version", "aligned slots (call: A_S)"].map(h => el("th", {}, h))),
        ...r.main.map(m => el("tr", { "data-rollout": m.rollout },
          el("td", {}, m.rollout), el("td", {}, m.format ? "ok" : "bad"), el("td", {}, m.correct ? "yes" : "no"),
          el("td", {}, fmt(m.reward)), el("td", { class: m.advantage > 0 ? "pos" : m.advantage < 0 ? "neg" : "" }, fmt(m.advantage)),
          el("td", {}, m.calls), el("td", {}, m.role_version),
          el("td", {}, (r.alignment[m.rollout] || []).map((s, j) => (s === "padding" ? "pad" : ("call " + s.call)) + ": " + fmt((r.sub_advantages[m.rollout] || [])[j])).join(" · ") || "none (the sub role does not train)")))),
      el("table", { id: "group-calls" },
        el("tr", {}, ...["rollout", "call", "format", "expert score", "R_S", "version"].map(h => el("th", {}, h))),
        ...r.calls.map(c => el("tr", {}, el("td", {}, c.rollout), el("td", {}, c.call), el("td", {}, c.format ? "ok" : "bad"),
          el("td", {}, fmt(c.expert)), el("td", {}, fmt(c.reward)), el("td", {}, c.role_version)))),
      g.tool_calls ? el("table", { id: "group-tools" },
        el("tr", {}, ...["rollout", "call", "the agent wrote", "tool", "status", "observation"].map(h => el("th", {}, h))),
        ...g.tool_calls.map(c => el("tr", { "data-status": c.status }, el("td", {}, c.rollout), el("td", {}, c.call),
          el("td", {}, c.text), el("td", {}, c.tool || "–"), el("td", {}, c.status), el("td", { class: "obs" }, c.observation)))) :
        el("p", { class: "muted" }, "No tool calls in this group."),
      el("p", { class: "muted" }, "The store keeps each group's rewards, alignment, advantages and tool calls; `mgrpo world --show N` prints whole transcripts of the scripted experts."));
  } catch (e) {
    host.replaceChildren(el("p", { class: "muted" }, String(e.message)));
  }
}

async function drawOverlay(runs) {
  const views = await Promise.all(runs.map(r => get(`/api/run/${r.id}?points=300`)));
  const dev = align(views.map(v => { const e = v.evals.filter(e => e.split === "dev"); return { x: e.map(e => e.step), y: e.map(e => e.accuracy) }; }));
  draw("chart-overlay-dev", "dev accuracy, every run", dev.xs, views.map((v, i) => ({ data: dev.cols[i], opts: Object.assign(line(v.label, COLORS[i % COLORS.length]), { points: { show: true } }) })));
  const rw = align(views.map(v => ({ x: v.curves.x, y: v.curves.series.reward_smooth || [] })));
  draw("chart-overlay-reward", "reward (smoothed), every run", rw.xs, views.map((v, i) => ({ data: rw.cols[i], opts: line(v.label, COLORS[i % COLORS.length]) })));
}

async function drawStudy() {
  const st = await get("/api/study?points=300");
  const names = Object.keys(st.variants);
  for (const [which, id, title] of [["dev", "chart-study-dev", "dev accuracy"], ["reward", "chart-study-reward", "reward (smoothed)"]]) {
    const sets = [];
    names.forEach(n => { const b = st.variants[n][which]; sets.push({ x: b.x, y: b.mean }, { x: b.x, y: b.lo }, { x: b.x, y: b.hi }); });
    const a = align(sets);
    const series = [], bands = [];
    names.forEach((n, i) => {
      const col = COLORS[i % COLORS.length], base = 1 + 3 * i;
      series.push({ data: a.cols[3 * i], opts: Object.assign(line(`${n} (${st.variants[n].runs} seeds)`, col, 2), { points: { show: which === "dev" } }) });
      series.push({ data: a.cols[3 * i + 1], hidden: true, opts: { label: n + " lo", stroke: col + "00", points: { show: false } } });
      series.push({ data: a.cols[3 * i + 2], hidden: true, opts: { label: n + " hi", stroke: col + "00", points: { show: false } } });
      bands.push({ series: [base + 2, base + 1], fill: col + "22" });
    });
    draw(id, `${title}: mean and 95 % interval per variant`, a.xs, series, { bands });
  }
  if (st.summary && st.summary.variants) {
    document.getElementById("study-table").replaceChildren(el("pre", {}, JSON.stringify(st.summary.variants, null, 1).slice(0, 4000)));
  }
}

let overview = null;

async function refresh() {
  try {
    overview = await get("/api/overview");
    const nav = document.getElementById("runs");
    nav.replaceChildren(...overview.runs.map(r => {
      const b = el("button", { class: r.id === current ? "active" : "", title: r.dir, "data-state": r.state }, `${r.label} (${r.state})`);
      b.onclick = () => { current = r.id; document.getElementById("group-step").value = ""; refresh().then(drawGroup); };
      return b;
    }));
    const v = await get(`/api/run/${current}`);
    drawRun(v);
    document.getElementById("overlay-section").hidden = overview.runs.length < 2;
    if (overview.runs.length > 1) await drawOverlay(overview.runs);
    document.getElementById("study-section").hidden = !overview.study;
    if (overview.study) await drawStudy();
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.setAttribute("data-version", overview.version);
    document.body.setAttribute("data-loaded", "1");
  } catch (e) {
    // What was drawn stays: a training process that served its own page has ended.
    const gone = e instanceof TypeError;
    document.getElementById("updated").textContent = gone
      ? `the server is gone (the run ended?); \`mgrpo dashboard --run ${overview && overview.runs[current] ? overview.runs[current].dir : "DIR"}\` shows it from disk`
      : "error: " + e.message;
  }
}

document.getElementById("group-form").onsubmit = ev => { ev.preventDefault(); drawGroup(); };

let pending = false, last = -1;
refresh().then(drawGroup).then(() => {
  const es = new EventSource(url("/events"));
  es.addEventListener("update", async ev => {
    const v = Number(ev.data);
    if (v === last || pending) return;
    last = v; pending = true;
    try { await refresh(); } finally { pending = false; }
  });
});
