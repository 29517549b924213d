// Hawkwatch console: refreshes snapshots (every second), states and the timeline; chat; the zone editor;
// the recordings player.
"use strict";

function refreshSnapshots() {
  for (const img of document.querySelectorAll("img.snapshot")) {
    if (img.dataset.busy) continue;
    img.dataset.busy = "1";
    const next = new Image();
    next.onload = () => { img.src = next.src; img.classList.add("loaded"); img.classList.remove("missing"); delete img.dataset.busy; };
    next.onerror = () => { img.classList.add("missing"); delete img.dataset.busy; };
    next.src = img.dataset.src + "?t=" + Date.now();
  }
}

const STATE_CLASS = { streaming: "ok", connecting: "warn", reconnecting: "warn", stalled: "warn" };

async function refreshStates() {
  let cameras;
  try { cameras = await (await fetch("/api/cameras")).json(); } catch (e) { return; }
  for (const h of cameras) {
    for (const badge of document.querySelectorAll(`[data-camera="${h.camera}"] [data-field="state"], [data-camera-state="${h.camera}"]`)) {
      badge.textContent = h.state;
      badge.className = "badge " + (STATE_CLASS[h.state] || "bad");
    }
    const ev = h.open_event;
    for (const badge of document.querySelectorAll(`[data-camera="${h.camera}"] [data-field="event"], [data-camera-event="${h.camera}"]`)) {
      badge.hidden = !ev;
      if (ev) {
        badge.textContent = `${ev.category} ${ev.score.toFixed(2)} since ${new Date(ev.wall_start * 1000).toLocaleTimeString()}`;
        if (badge.tagName === "A") badge.href = `/events/${ev.alert_id}`;
      }
    }
    for (const why of document.querySelectorAll(`[data-camera="${h.camera}"] [data-field="detail"], [data-camera-detail="${h.camera}"]`)) {
      why.hidden = h.state === "streaming" || !h.detail;      // why a camera is not streaming: refused, timed out...
      why.textContent = h.detail || "";
    }
    for (const stats of document.querySelectorAll(`[data-camera="${h.camera}"] [data-field="stats"]`)) {
      stats.textContent = `${(h.fps_in || 0).toFixed(1)} fps · ${h.windows_done || 0} windows · ${h.alerts || 0} alerts`;
    }
  }
}

async function refreshTimeline() {
  // fetched (not just reloaded) so that the span it draws comes with it, for clicks to become times
  const img = document.getElementById("timeline");
  if (!img) return;
  let r;
  try { r = await fetch(img.dataset.src + "&t=" + Date.now()); } catch (e) { return; }
  if (!r.ok) return;
  img.dataset.start = r.headers.get("X-Timeline-Start");
  img.dataset.end = r.headers.get("X-Timeline-End");
  img.dataset.plot = r.headers.get("X-Timeline-Plot");
  const old = img.src;
  img.src = URL.createObjectURL(await r.blob());
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
}

// Live video: the camera's fragmented MP4 through Media Source Extensions, kept near the live edge;
// the snapshot with the scene drawn on it (and the zone editor) is the overlay toggle's other side.
function setUpLive() {
  const box = document.getElementById("live"), toggle = document.getElementById("overlay-toggle");
  if (!box || !toggle) return;
  const camera = box.dataset.camera, video = document.getElementById("live-player");
  const editor = document.getElementById("zone-editor"), state = document.getElementById("live-state");
  function show(overlay) { box.hidden = overlay; editor.hidden = !overlay; }
  toggle.addEventListener("change", () => show(toggle.checked));
  const zonesPanel = document.querySelector("details.zones-panel");      // zones are drawn on the snapshot
  if (zonesPanel) zonesPanel.addEventListener("toggle", () => { if (zonesPanel.open) { toggle.checked = true; show(true); } });

  async function play() {
    let info;
    try { info = await (await fetch(`/api/cameras/${camera}/live`)).json(); } catch (e) { info = {}; }
    if (!info.mime || !window.MediaSource || !MediaSource.isTypeSupported(info.mime)) {
      state.textContent = info.mime ? "this browser cannot play the live video" : "no live video now";
      toggle.checked = true; show(true);
      setTimeout(play, 5000);
      return;
    }
    state.textContent = info.transcoded ? `live (transcoded from ${info.codec})` : `live (${info.codec}, as the camera sends it)`;
    if (!toggle.checked) show(false);
    const source = new MediaSource();
    video.src = URL.createObjectURL(source);
    await new Promise(resolve => source.addEventListener("sourceopen", resolve, { once: true }));
    const buffer = source.addSourceBuffer(info.mime);
    const pending = [];
    function pump() {
      if (buffer.updating || source.readyState !== "open") return;
      if (pending.length) { buffer.appendBuffer(pending.shift()); return; }
      const b = video.buffered;
      if (b.length && video.currentTime - b.start(0) > 30) buffer.remove(0, video.currentTime - 10);
    }
    buffer.addEventListener("updateend", () => {
      const b = video.buffered;
      if (b.length && b.end(b.length - 1) - video.currentTime > 1.0) video.currentTime = b.end(b.length - 1) - 0.1;
      if (video.paused) video.play().catch(() => {});
      pump();
    });
    try {
      const reader = (await fetch(`/api/cameras/${camera}/live.mp4`)).body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        pending.push(value);
        pump();
      }
    } catch (e) { /* the stream broke: start again */ }
    state.textContent = "reconnecting…";
    setTimeout(play, 1000);
  }
  play();
}

// Recordings: a click on the timeline plays the camera's footage from that time, segment after segment.
function setUpRecordings() {
  const img = document.getElementById("timeline"), box = document.getElementById("recording");
  if (!img || !box || !img.classList.contains("seekable")) return;
  const camera = box.dataset.camera, video = document.getElementById("player");
  const playhead = document.getElementById("playhead"), exportLink = document.getElementById("export");
  let current = null;                       // the segment playing: {start, end, url}

  async function segmentAt(t) {
    const list = await (await fetch(`/api/cameras/${camera}/recordings?start=${t - 1}&end=${t + 600}`)).json();
    return list.find(s => s.start <= t + 0.5 && (s.end === null || t < s.end)) || list.find(s => s.start > t) || null;
  }
  async function play(t) {
    const seg = await segmentAt(t);
    box.hidden = false;
    if (!seg) { playhead.textContent = `no footage at ${new Date(t * 1000).toLocaleTimeString()}`; return; }
    current = seg;
    video.src = seg.url;
    video.onloadedmetadata = () => { video.currentTime = Math.max(0, t - seg.start); video.play().catch(() => {}); };
  }
  video.addEventListener("timeupdate", () => {
    if (!current) return;
    const t = current.start + video.currentTime;
    playhead.textContent = new Date(t * 1000).toLocaleString();
    exportLink.href = `/api/cameras/${camera}/export.mp4?start=${(t - 30).toFixed(1)}&end=${(t + 30).toFixed(1)}`;
  });
  video.addEventListener("ended", () => { if (current && current.end) play(current.end + 0.05); });
  img.addEventListener("click", (e) => {
    const [left, width, total] = (img.dataset.plot || "34,862,900").split(",").map(Number);
    const start = Number(img.dataset.start), end = Number(img.dataset.end);
    if (!start || !end) return;
    const rect = img.getBoundingClientRect();
    const x = (e.clientX - rect.left) / rect.width * total;
    play(start + Math.min(Math.max((x - left) / width, 0), 1) * (end - start));
  });
  window.hawkwatchPlay = play;              // for the console's tests and the curious: play(epoch seconds)
}

function setUpChat() {
  const form = document.getElementById("chat");
  if (!form) return;
  const log = document.getElementById("chat-log");
  const say = (cls, text) => { const li = document.createElement("li"); li.className = cls; li.textContent = text; log.append(li); li.scrollIntoView(); return li; };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = form.elements.question, question = input.value.trim();
    if (!question) return;
    say("q", question);
    input.value = "";
    const pending = say("pending", "…");
    try {
      const r = await fetch(`/api/cameras/${form.dataset.camera}/chat`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ question }) });
      const body = await r.json();
      if (r.ok) { pending.textContent = body.answer + `  (windows ${body.windows.join(", ")}, ${Math.round(body.ms)} ms)`; pending.className = "a"; }
      else { pending.textContent = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail); pending.className = "error"; }
    } catch (e) { pending.textContent = "no answer: " + e; pending.className = "error"; }
  });
}

function setUpZones() {
  const editor = document.getElementById("zone-editor");
  if (!editor) return;
  const camera = editor.closest("[data-camera]").dataset.camera;
  const svg = editor.querySelector("svg.zones"), list = document.getElementById("zone-list");
  const yaml = document.getElementById("zone-yaml");
  const zones = JSON.parse(editor.dataset.zones || "{}");
  let draft = [];
  const ns = "http://www.w3.org/2000/svg";
  const fmt = (p) => p.map(([x, y]) => `${x},${y}`).join(" ");
  function draw() {
    svg.replaceChildren();
    for (const [name, z] of Object.entries(zones)) {
      const poly = document.createElementNS(ns, "polygon");
      poly.setAttribute("points", fmt(z.points)); poly.setAttribute("class", z.kind);
      svg.append(poly);
    }
    if (draft.length) {
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("points", fmt(draft.concat([draft[0]]))); line.setAttribute("class", "draft");
      svg.append(line);
    }
    list.replaceChildren(...Object.entries(zones).map(([name, z]) => {
      const li = document.createElement("li");
      li.textContent = `${name} (${z.kind}, ${z.points.length} corners) `;
      const rm = document.createElement("button"); rm.type = "button"; rm.textContent = "remove";
      rm.onclick = () => { delete zones[name]; draw(); };
      li.append(rm); return li;
    }));
  }
  editor.addEventListener("click", (ev) => {
    if (!document.querySelector("details.zones-panel").open) return;
    const img = editor.querySelector("img"), r = img.getBoundingClientRect();
    const x = (ev.clientX - r.left) / r.width, y = (ev.clientY - r.top) / r.height;
    if (x < 0 || x > 1 || y < 0 || y > 1) return;
    draft.push([Math.round(x * 1000) / 1000, Math.round(y * 1000) / 1000]);
    draw();
  });
  document.getElementById("zone-clear").onclick = () => { draft = []; draw(); };
  document.getElementById("zone-add").onclick = () => {
    const name = document.getElementById("zone-name").value.trim();
    if (!name || draft.length < 3) { alert("Name the zone and place at least 3 corners on the picture."); return; }
    zones[name] = { kind: document.getElementById("zone-kind").value, points: draft };
    draft = []; draw();
  };
  document.getElementById("zone-apply").onclick = async () => {
    const r = await fetch(`/api/cameras/${camera}/zones`, {
      method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(zones) });
    const body = await r.json();
    yaml.hidden = false;
    yaml.textContent = r.ok ? `Applied, and kept across restarts in ${body.kept_in}. In the config they read:\n\n` + body.config
                            : "Not applied: " + JSON.stringify(body.detail);
  };
  draw();
}

document.addEventListener("DOMContentLoaded", () => {
  refreshSnapshots(); setInterval(refreshSnapshots, 1000);
  refreshStates(); setInterval(refreshStates, 2000);
  refreshTimeline(); setInterval(refreshTimeline, 5000);
  setUpChat(); setUpZones(); setUpRecordings(); setUpLive();
});
