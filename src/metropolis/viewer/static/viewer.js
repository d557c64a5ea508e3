// The Metropolis viewer: draws the town and each agent at one step, and the scheduler's picture at the moment
// that step became complete. Frames come from /api/frames in windows; a live run adds frames as /api/live says.
"use strict";
const $ = (id) => document.getElementById(id);
const town = $("town"), tctx = town.getContext("2d");
const sched = $("sched"), sctx = sched.getContext("2d");
// Frames per request: 100 for a town, fewer for a big run, so one request stays near 1 MB before compression.
let WINDOW = 100;
// Above this many agents a marker is a dot without initials or action: labels are drawn for the selected and the
// hovered agent and for agents talking, so 1,000 agents stay readable (and each frame draws in a few ms).
const LABELS_UP_TO = 60;
const state = {
  run: null, map: null, frames: new Map(), actions: new Map(), step: 0, complete: 0, playing: false,
  selected: null, scale: 8, following: true, pending: new Map(), mapImage: null,
  live: null, flash: new Map(), // speculation now (live): steps running ahead, agents whose run was just undone
};
const SPEC = "#e07b00", UNDO = "#d0206f", FLASH_MS = 900;
// What the tests (and a curious person in the console) can read: the frame drawn and where each marker is.
window.viewer = {
  shown: -1, drawn: [], talks: [], ready: false, errors: [], history: [], drawMs: 0, sent: [], heard: [],
  spec: { shown: [], counts: null, live: [], flashed: 0 }, // speculative markers drawn; counts shown; live counts
};

const GLYPHS = [
  [/sleep|bed|nap/i, "💤"], [/eat|breakfast|lunch|dinner|cook|cafe|coffee/i, "🍽"], [/talk|chat|convers/i, "💬"],
  [/walk|go|head|move/i, "🚶"], [/work|write|paint|study|read|research/i, "✍"], [/idle|wait|rest/i, "⏳"],
];
function glyph(action) {
  for (const [re, g] of GLYPHS) if (re.test(action)) return g;
  return "•";
}
function hue(i) { return (i * 137.508) % 360; }
function initials(name) { return name.split(/\s+/).map((w) => w[0]).join("").slice(0, 2); }

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

async function start() {
  state.run = await getJSON("/api/run");
  state.map = await getJSON("/api/map");
  const run = state.run;
  $("title").textContent = `${run.agents.length} agents · ${run.scheduler || "?"} · ${run.world || "?"}` +
    (run.run_id ? ` · ${run.run_id}` : "");
  WINDOW = Math.max(10, Math.min(100, Math.floor(50000 / Math.max(1, run.agents.length))));
  const w = state.map.width, h = state.map.height;
  const fit = Math.min(1120 / w, 800 / h); // a big town (1,000 agents: 40 copies) is drawn below 2 px a tile
  state.scale = fit >= 2 ? Math.floor(fit) : fit;
  town.width = Math.round(w * state.scale); town.height = Math.round(h * state.scale); sched.width = town.width;
  drawMapImage();
  const list = document.createDocumentFragment();
  run.agents.forEach((name, i) => {
    const li = document.createElement("li");
    li.textContent = name; li.dataset.agent = i; li.style.color = `hsl(${hue(i)},60%,35%)`;
    list.appendChild(li);
  });
  $("agents").appendChild(list);
  $("agents").classList.toggle("many", run.agents.length > LABELS_UP_TO);
  $("agents").onclick = (e) => { if (e.target.dataset.agent !== undefined) select(+e.target.dataset.agent); };
  $("agentsHead").textContent = `Agents (${run.agents.length})`;
  if (run.player !== null && run.player !== undefined) setUpPlayer(run.player);
  setComplete(run.complete);
  if (run.live) follow();
  await show(run.live ? run.complete - 1 : 0);
  window.viewer.ready = true;
}

function setComplete(n) {
  state.complete = n;
  $("slider").max = Math.max(0, n - 1);
}

// The map is painted one pixel a tile into an image, then scaled up without smoothing: a 1,000-agent town of
// 600,000 tiles paints in a few milliseconds.
function drawMapImage() {
  const { width: w, height: h, walls, places, names } = state.map, s = state.scale;
  const tiles = new ImageData(w, h), d = tiles.data;
  const palette = names.map((_, p) => hslToRgb(hue(p * 7 + 3) / 360, 0.45, 0.86));
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const i = 4 * (y * w + x), p = places.length ? places[y][x] : -1, wall = walls.length && walls[y][x];
    const [r, g, b] = wall ? [85, 96, 106] : p >= 0 ? palette[p] : [251, 250, 246];
    d[i] = r; d[i + 1] = g; d[i + 2] = b; d[i + 3] = 255;
  }
  const small = document.createElement("canvas");
  small.width = w; small.height = h; small.getContext("2d").putImageData(tiles, 0, 0);
  const img = document.createElement("canvas");
  img.width = Math.round(w * s); img.height = Math.round(h * s);
  const c = img.getContext("2d");
  c.imageSmoothingEnabled = false;
  c.drawImage(small, 0, 0, img.width, img.height);
  if (!walls.length) { // a world without a map: a light grid
    c.strokeStyle = "#eee";
    for (let x = 0; x <= w; x += 5) { c.beginPath(); c.moveTo(x * s, 0); c.lineTo(x * s, h * s); c.stroke(); }
    for (let y = 0; y <= h; y += 5) { c.beginPath(); c.moveTo(0, y * s); c.lineTo(w * s, y * s); c.stroke(); }
  }
  state.mapImage = img;
  state.placeNames = names;
}

function hslToRgb(h, s, l) {
  const k = (n) => (n + h * 12) % 12, a = s * Math.min(l, 1 - l);
  const f = (n) => Math.round(255 * (l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1))));
  return [f(0), f(8), f(4)];
}

// Frames come in windows; a complete frame never changes, so a window fetched while a live run was short of it
// is completed from its first missing frame when a frame it lacked is asked for. A live view following the run
// asks for the newest frame `alone`: the frames in between are fetched only if the person scrubs back to them, so
// watching costs the run one frame per look, however fast it goes.
async function load(step, alone = false) {
  const first = alone ? step : Math.floor(step / WINDOW) * WINDOW;
  while (state.pending.has(first)) await state.pending.get(first);
  if (state.frames.has(step)) return;
  let from = first;
  while (from < step && state.frames.has(from)) from++;
  const last = alone ? step + 1 : first + WINDOW;
  const fetched = getJSON(`/api/frames?first=${from}&last=${last}`).then((data) => {
    data.frames.forEach((f) => {
      f.actionNames = data.actions;
      state.frames.set(f.step, f);
    });
  });
  state.pending.set(first, fetched);
  try { await fetched; } finally { state.pending.delete(first); }
}

async function show(step, alone = false) {
  step = Math.max(0, Math.min(step, state.complete - 1));
  if (step < 0) return;
  state.want = step; // only the latest request is drawn: an earlier one that loads later is dropped
  if (!state.frames.has(step)) await load(step, alone);
  const f = state.frames.get(step);
  if (!f || state.want !== step) return;
  state.step = step;
  $("slider").value = step;
  draw(f);
  // Reads ahead for playback; a page nobody sees reads nothing ahead (its opening frame is all it fetches).
  if (!document.hidden && !state.frames.has(step + WINDOW) && step + WINDOW < state.complete) load(step + WINDOW);
}

function clock(step) {
  const secs = state.run.start_seconds + (step + 1) * state.run.seconds_per_step;
  const h = Math.floor(secs / 3600) % 24, m = Math.floor(secs / 60) % 60, s = Math.floor(secs % 60);
  return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
}

function draw(f) {
  const t0 = performance.now();
  const s = state.scale, layer = $("layer").checked, sc = f.sched;
  const many = f.pos.length > LABELS_UP_TO, talking = new Set((f.talks || []).flat());
  tctx.drawImage(state.mapImage, 0, 0);
  const drawn = f.pos.map((p) => p && [p[0], p[1]]);
  const spec = new Set(f.spec || []), undone = f.undone || {}, now = performance.now();
  const flashing = new Set([...state.flash].filter(([, until]) => until > now).map(([a]) => a));
  const liveAhead = new Set(state.live && state.following ? state.live.ahead.map(([a]) => a) : []);
  const px = (p) => [p[0] * s + s / 2, p[1] * s + s / 2];
  if (layer && sc) {
    tctx.lineWidth = 2;
    sc.clusters.filter((m) => m.length > 1).forEach((members) => {
      tctx.strokeStyle = "rgba(30,120,220,0.7)";
      const pts = members.map((a) => drawn[a]).filter(Boolean).map(px);
      tctx.beginPath();
      pts.forEach(([x, y], i) => (i ? tctx.lineTo(x, y) : tctx.moveTo(x, y)));
      tctx.stroke();
    });
    tctx.strokeStyle = "rgba(220,40,40,0.55)";
    // With many agents the arrows would hide the town: only those of the selected or hovered agent are drawn.
    const mine = (a, b) => !many || [a, b].includes(state.selected) || [a, b].includes(state.hovered);
    sc.blocks.forEach(([b, a]) => {
      if (!drawn[a] || !drawn[b] || !mine(a, b)) return;
      arrow(px(drawn[b]), px(drawn[a]));
    });
  }
  // Conversations: a green line between the two partners, a speech glyph at its middle.
  tctx.strokeStyle = "rgba(20,150,60,0.85)"; tctx.lineWidth = 2.5; tctx.setLineDash([5, 3]);
  (f.talks || []).forEach(([a, b]) => {
    if (!drawn[a] || !drawn[b]) return;
    const [x0, y0] = px(drawn[a]), [x1, y1] = px(drawn[b]);
    tctx.beginPath(); tctx.moveTo(x0, y0); tctx.lineTo(x1, y1); tctx.stroke();
  });
  tctx.setLineDash([]);
  const labels = [];
  f.pos.forEach((p, i) => {
    if (!p) return;
    const [x, y] = px(p), r = many ? Math.max(2.5, s * 0.45) : Math.max(5, s * 0.9);
    const running = layer && sc && sc.running[i], chosen = i === state.selected || i === state.hovered;
    tctx.beginPath(); tctx.arc(x, y, chosen && many ? r + 2 : r, 0, 2 * Math.PI);
    tctx.fillStyle = `hsl(${hue(i)},65%,${running ? 45 : 60}%)`; tctx.fill();
    const me = i === state.run.player, ahead = layer && spec.has(i);
    tctx.lineWidth = me || i === state.selected || ahead ? 3 : many ? 0.8 : 1.5;
    tctx.strokeStyle = me ? "#e0a000" : i === state.selected ? "#b23" : ahead ? SPEC : talking.has(i) ? "#149632"
      : running ? "#1e78dc" : "#333";
    tctx.stroke();
    if (layer && (undone[i] || flashing.has(i))) ring(x, y, r + 3, UNDO, [3, 2]); // its earlier runs were undone
    if (layer && liveAhead.has(i)) ring(x, y, r + 3, SPEC, [2, 3]); // running ahead right now (live)
    if (!many) {
      tctx.fillStyle = "#fff"; tctx.font = `bold ${Math.max(8, r)}px sans-serif`;
      tctx.textAlign = "center"; tctx.textBaseline = "middle";
      tctx.fillText(initials(state.run.agents[i]), x, y + 0.5);
    }
    if (!many || chosen || talking.has(i)) labels.push([i, x, y, r]);
  });
  // Labels last, over every marker: the action (or, when the agent speaks at this step, its line).
  tctx.textAlign = "center"; tctx.textBaseline = "middle";
  const second = new Set((f.talks || []).map(([, b]) => b));
  labels.forEach(([i, lx, y, r]) => {
    const action = f.actionNames[f.action[i]] || "", line = ((f.said || {})[i] || []).slice(-1)[0];
    const text = line ? `💬 ${line.slice(0, 40)}` : `${glyph(action)} ${action.slice(0, 18)}`;
    tctx.font = "11px sans-serif";
    const w = tctx.measureText(text).width + 6;
    const x = Math.max(w / 2, Math.min(town.width - w / 2, lx)); // a label near the edge stays on the canvas
    const ty = line && second.has(i) ? y + r + 8 : y - r - 7; // two partners' lines: one above, one below
    if (many || line) {
      tctx.fillStyle = "rgba(255,255,255,0.85)"; tctx.fillRect(x - w / 2, ty - 7, w, 14);
    }
    tctx.fillStyle = line ? "#0d5f25" : "#111";
    tctx.fillText(text, x, ty);
  });
  drawTalks(f);
  drawSpec(f);
  window.viewer.spec.shown = [...spec].sort((a, b) => a - b);
  if (state.run.player !== null && state.run.player !== undefined) hear(f);
  const ahead = sc ? ` · GVT ${sc.gvt} · ${sc.running.reduce((a, b) => a + b, 0)} running · t=${sc.t.toFixed(1)} s` : "";
  $("clock").textContent = `step ${f.step} · ${clock(f.step)}${ahead}`;
  drawSched(sc);
  window.viewer.shown = f.step;
  window.viewer.drawn = drawn;
  window.viewer.talks = f.talks || [];
  window.viewer.frame = f;
  window.viewer.drawMs = performance.now() - t0;
}

// Who talks to whom at this step, beside the map: each pair, and the lines said at this step.
function drawTalks(f) {
  const names = state.run.agents, talks = f.talks || [], said = f.said || {};
  const rows = talks.slice(0, 30).map(([a, b]) => {
    const lines = [...(said[a] || []), ...(said[b] || [])].slice(-2).map((l) => `<div class="line">${esc(l)}</div>`);
    return `<li data-agent="${a}"><b>${esc(names[a])}</b> ↔ <b>${esc(names[b])}</b>${lines.join("")}</li>`;
  });
  const more = talks.length > 30 ? `<li>… and ${talks.length - 30} more</li>` : "";
  $("talks").innerHTML = `<h2>Talking now (${talks.length})</h2>` +
    (rows.length ? `<ul>${rows.join("")}${more}</ul>` : "<p class=\"quiet\">nobody at this step</p>");
}

// Speculation in numbers: at this frame's moment (replay), and now (live, from the server's `spec` events).
function drawSpec(f) {
  const sc = f.sched, c = sc && sc.counts, lv = state.live;
  const speculative = state.run.scheduler === "speculative" || (c && (c.speculative || c.undone)) || lv;
  $("specPanel").hidden = !speculative;
  if (!speculative) return;
  const committed = sc ? sc.steps.reduce((a, b) => a + b, 0) : 0;
  // At a frame's moment the trace knows when steps ended (a speculative one commits later, once validated).
  const at = c ? `<div>at this frame: <b>${c.speculative}</b> of ${committed} steps done ran on a bet (ahead of ` +
    `their blockers, or apart from their cluster); <span class="undo">${c.undone} runs undone</span>; ${(sc.ahead || []).length} running ahead` +
    "</div>" : "";
  const now = lv ? `<div>now: <b>${lv.counts.speculative}</b> of ${lv.counts.committed} committed steps ran on a bet; ` +
    `<span class="undo">${lv.counts.undone} undone</span>; ${lv.ahead.length} steps ahead not yet committed</div>` : "";
  $("specPanel").innerHTML = `<h2>Speculation</h2>${at}${now}`;
  window.viewer.spec.counts = c ? { ...c, committed } : null;
}

function ring(x, y, r, colour, dash) {
  tctx.beginPath(); tctx.arc(x, y, r, 0, 2 * Math.PI);
  tctx.lineWidth = 2.5; tctx.strokeStyle = colour; tctx.setLineDash(dash); tctx.stroke(); tctx.setLineDash([]);
}

function arrow([x0, y0], [x1, y1]) {
  tctx.beginPath(); tctx.moveTo(x0, y0); tctx.lineTo(x1, y1); tctx.stroke();
  const a = Math.atan2(y1 - y0, x1 - x0), h = 7;
  tctx.beginPath(); tctx.moveTo(x1, y1);
  tctx.lineTo(x1 - h * Math.cos(a - 0.4), y1 - h * Math.sin(a - 0.4));
  tctx.lineTo(x1 - h * Math.cos(a + 0.4), y1 - h * Math.sin(a + 0.4));
  tctx.closePath(); tctx.fillStyle = tctx.strokeStyle; tctx.fill();
}

// Each agent's step against GVT: one bar per agent, its height how far it is ahead of the slowest agent.
function drawSched(sc) {
  const W = sched.width, H = sched.height;
  sctx.clearRect(0, 0, W, H);
  sctx.fillStyle = "#333"; sctx.font = "12px sans-serif"; sctx.textAlign = "left"; sctx.textBaseline = "top";
  if (!sc || !$("layer").checked) { sctx.fillText("scheduler layer off", 6, 4); return; }
  const n = sc.steps.length, ahead = sc.steps.map((x) => x - sc.gvt), top = Math.max(5, ...ahead);
  sctx.fillText(`steps ahead of GVT (${sc.gvt}), per agent; blue: running, orange: on a bet, ` +
    `pink cap: run again, grey: waiting; ` +
    `${sc.block_pairs ?? sc.blocks.length} blocked-by pairs` +
    `${n > LABELS_UP_TO ? " (arrows: the selected agent's)" : ""}, ${sc.clusters.length} clusters running`, 6, 4);
  const bw = (W - 12) / n, base = H - 6, hmax = H - 30;
  const spec = new Set(sc.ahead || []), rerun = new Set(sc.rerun || []);
  ahead.forEach((a, i) => {
    const h = Math.max(1, (a / top) * hmax);
    sctx.fillStyle = spec.has(i) ? SPEC : sc.running[i] ? "#1e78dc" : "#9aa3ab";
    if (i === state.selected) sctx.fillStyle = "#b23";
    sctx.fillRect(6 + i * bw + 1, base - h, Math.max(1, bw - 2), h);
    if (rerun.has(i)) { sctx.fillStyle = UNDO; sctx.fillRect(6 + i * bw + 1, base - h - 4, Math.max(1, bw - 2), 3); }
  });
}

sched.addEventListener("click", (e) => {
  const f = state.frames.get(state.step);
  if (!f || !f.sched) return;
  const r = sched.getBoundingClientRect(), n = f.sched.steps.length, bw = (sched.width - 12) / n;
  const i = Math.floor((e.clientX - r.left - 6) / bw);
  if (i >= 0 && i < n) select(i);
});

function markerAt(mx, my) {
  const f = state.frames.get(state.step), s = state.scale;
  if (!f) return null;
  let best = null, bestD = Math.max(8, s) ** 2;
  f.pos.forEach((p, i) => {
    if (!p) return;
    const d = (p[0] * s + s / 2 - mx) ** 2 + (p[1] * s + s / 2 - my) ** 2;
    if (d <= bestD) { best = i; bestD = d; }
  });
  return best;
}

town.addEventListener("mousemove", (e) => {
  const r = town.getBoundingClientRect(), mx = e.clientX - r.left, my = e.clientY - r.top;
  const x = Math.floor(mx / state.scale), y = Math.floor(my / state.scale), m = state.map;
  const agent = markerAt(mx, my);
  if (agent !== state.hovered && state.frames.get(state.step)) { state.hovered = agent; draw(state.frames.get(state.step)); }
  const place = m.places.length && m.places[y] && m.places[y][x] >= 0 ? m.names[m.places[y][x]] : "";
  const wall = m.walls.length && m.walls[y] && m.walls[y][x] ? "wall" : "";
  $("hover").textContent = `(${x}, ${y}) ${agent !== null ? state.run.agents[agent] + " · " : ""}${place || wall}` || "\u00a0";
});
town.addEventListener("click", (e) => {
  const r = town.getBoundingClientRect();
  const agent = markerAt(e.clientX - r.left, e.clientY - r.top);
  if (agent !== null) select(agent);
});

function esc(s) {
  return String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

async function select(agent) {
  state.selected = agent;
  document.querySelectorAll("#agents li").forEach((li) => li.classList.toggle("sel", +li.dataset.agent === agent));
  const f = state.frames.get(state.step);
  if (f) draw(f);
  const d = await getJSON(`/api/agent/${agent}`);
  const actions = d.actions.slice(-200).map((a) =>
    `<tr><td>${a.step}</td><td>${clock(a.step)}</td><td>${esc(glyph(a.action))} ${esc(a.action)}</td></tr>`).join("");
  const calls = d.calls.slice(-200).map((c) => `<div class="call"><b>step ${c.step}</b> ${esc(c.function)} · ` +
    `${c.prompt_tokens} prompt / ${c.output_tokens} output tokens · ${(c.end - c.start).toFixed(2)} s` +
    (c.prompt ? `<pre>${esc(c.prompt)}</pre><pre>→ ${esc(c.output)}</pre>` : " <i>(text not kept)</i>") + "</div>").join("");
  const talks = d.conversations.slice(-200).map((c) => `<div class="call"><b>${clock(c.start)}–${clock(c.end)}</b> ` +
    `(steps ${c.start}–${c.end}) with ${c.with.map((a) => esc(state.run.agents[a])).join(", ")}` +
    c.lines.map((l) => `<div class="line">${esc(l)}</div>`).join("") + "</div>").join("");
  $("detail").innerHTML = `<h3 id="who">${esc(d.name)}</h3>` +
    `<h3>Actions (${d.actions.length} changes)</h3><div class="scroll"><table><tr><th>step</th><th>time</th>` +
    `<th>action</th></tr>${actions}</table></div>` +
    `<h3 id="conversations">Conversations (${d.conversations.length})</h3>` +
    `<div class="scroll">${talks || "<p>none</p>"}</div>` +
    `<h3 id="calls">LLM calls (${d.calls.length})</h3>${calls || "<p>none</p>"}`;
}

function tick() {
  if (!state.playing) return;
  const next = state.step + 1;
  if (next >= state.complete) {
    if (!state.run.live) { togglePlay(false); return; }
  } else show(next);
  setTimeout(tick, 1000 / +$("speed").value);
}
function togglePlay(on) {
  state.playing = on ?? !state.playing;
  $("play").textContent = state.playing ? "⏸" : "▶";
  if (state.playing) tick();
}
$("play").onclick = () => togglePlay();
$("slider").addEventListener("input", (e) => {
  state.following = +e.target.value >= state.complete - 1; // a live view follows the newest frame until scrubbed back
  show(+e.target.value);
});
$("layer").addEventListener("change", () => { const f = state.frames.get(state.step); if (f) draw(f); });
document.addEventListener("keydown", (e) => { if (e.code === "Space" && e.target === document.body) { e.preventDefault(); togglePlay(); } });

// Live: the server says how many frames are complete; the view follows the newest unless the person scrubbed back.
function follow() {
  $("live").hidden = false;
  const events = new EventSource("/api/live");
  events.addEventListener("complete", async (e) => {
    const n = +e.data;
    window.viewer.history.push(n);
    setComplete(n);
    // A page nobody sees (a tab in the background) fetches and draws nothing; it catches up when shown again.
    if (state.following && n > 0 && !document.hidden) await show(n - 1, true);
    if (state.run.player !== null && state.run.player !== undefined) await hearUpTo(n);
    window.viewer.complete = n;
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.following && state.complete > 0) show(state.complete - 1, true);
  });
  events.addEventListener("spec", (e) => {
    const lv = JSON.parse(e.data), until = performance.now() + FLASH_MS;
    state.live = lv;
    lv.rollbacks.forEach(([, agent]) => state.flash.set(agent, until)); // a rollback flashes its agent
    window.viewer.spec.live.push(lv.counts);
    window.viewer.spec.flashed += lv.rollbacks.length;
    if (document.hidden) return;
    if (lv.rollbacks.length) setTimeout(window.viewer.redraw, FLASH_MS + 20); // the flash ends
    window.viewer.redraw();
  });
  events.addEventListener("end", () => { $("live").textContent = "● run finished"; window.viewer.finished = true; events.close(); });
}

// A person in the town: its commands go to /api/player; what was said to it and by it is listed as frames come.
// Commands go one after another: keys pressed quickly would otherwise race on separate connections and reach
// the player in another order than they were pressed.
let sending = Promise.resolve();
function command(body) {
  window.viewer.sent.push(body);
  sending = sending.then(() => send(body));
  return sending;
}
async function send(body) {
  const r = await fetch("/api/player", {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  }).catch((e) => ({ ok: false, status: String(e), json: async () => ({}) }));
  if (!r.ok) {
    const e = await r.json().catch(() => ({}));
    window.viewer.errors.push(`player: ${e.detail || r.status}`);
  }
}
function setUpPlayer(me) {
  $("player").hidden = false;
  $("playerName").textContent = state.run.agents[me];
  state.run.agents.forEach((name, i) => {
    if (i !== me) $("sayTo").insertAdjacentHTML("beforeend", `<option>${esc(name)}</option>`);
  });
  const keys = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  document.addEventListener("keydown", (e) => {
    if (!keys[e.key] || ["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName)) return;
    e.preventDefault();
    command({ move: keys[e.key] });
  });
  town.addEventListener("dblclick", (e) => {
    const r = town.getBoundingClientRect();
    command({ goto: [Math.floor((e.clientX - r.left) / state.scale), Math.floor((e.clientY - r.top) / state.scale)] });
  });
  $("sayForm").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("sayText").value.trim();
    if (!text) return;
    command({ say: text, to: $("sayTo").value || null });
    $("sayText").value = "";
  });
  state.heardSteps = new Set();
  state.heardUpTo = -1;
}
// A person hears every frame, not only those drawn (a live view draws the newest alone): the frames since the
// last heard are fetched as they complete (a person's run is paced by the wall clock: a few frames a second).
async function hearUpTo(n) {
  const from = state.heardUpTo + 1;
  if (from >= n) return;
  state.heardUpTo = n - 1;
  const data = await getJSON(`/api/frames?first=${from}&last=${n}`);
  data.frames.forEach(hear);
}
function hear(f) {
  const me = state.run.player;
  if (state.heardSteps.has(f.step)) return;
  state.heardSteps.add(f.step);
  const partners = (f.talks || []).filter((t) => t.includes(me)).flat();
  const lines = [...new Set([me, ...partners])].flatMap((a) => ((f.said || {})[a] || []));
  lines.filter((l) => !window.viewer.heard.includes(l)).forEach((l) => {
    window.viewer.heard.push(l);
    $("heard").insertAdjacentHTML("beforeend", `<li>${clock(f.step)} ${esc(l)}</li>`);
    $("heard").scrollTop = $("heard").scrollHeight;
  });
}

$("filter").addEventListener("input", (e) => {
  const want = e.target.value.trim().toLowerCase();
  document.querySelectorAll("#agents li").forEach((li) => { li.hidden = want && !li.textContent.toLowerCase().includes(want); });
});
$("talks").addEventListener("click", (e) => { const li = e.target.closest("li[data-agent]"); if (li) select(+li.dataset.agent); });
window.viewer.select = select;
window.viewer.redraw = () => { const f = state.frames.get(state.step); if (f) draw(f); };

window.addEventListener("error", (e) => window.viewer.errors.push(String(e.message)));
start().catch((e) => { window.viewer.errors.push(String(e)); $("title").textContent = "error: " + e; });
