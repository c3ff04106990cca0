// synack view: draws a lesson's records (or a followed trace's) as they are played.
// The server sends a whole lesson run at once; this page paces it, so pause, step,
// replay and speed are local. A followed trace arrives in batches as it is written.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ladder = $("ladder");
  const NS = ladder.namespaceURI; // the SVG namespace, taken from the page itself
  const params = new URLSearchParams(location.search);
  const X = { client: 230, server: 610 };
  const WIDTH = 800;
  const TOP = 20;

  let socket = null;
  let mode = "lesson"; // or "follow"
  let run = null; // the lesson's data, for the verdict
  let records = [];
  let pos = 0;
  let playing = params.get("autoplay") !== "0";
  let timer = null;
  let draw = null; // the drawing state of the current playback

  if (params.get("speed") !== null) $("speed").value = params.get("speed");

  // The page's own words, in the learner's language as the narration is; every key
  // in both (tests/test_view.py checks that no key is missing from either).
  const UI = {
    en: {
      lesson: "lesson", language: "language", speed: "speed", max: "max",
      play: "Play", pause: "Pause", step: "Step", replay: "Replay",
      idle: "idle", connecting: "connecting…", loading: "running the lesson…",
      playing: "playing", paused: "paused", done: "done", live: "following (live)",
      following: "following", closed: "disconnected from synack view", error: "error",
      again: "(again)", gave_up: "gave up",
      cwnd_title: "cwnd (bytes)", rtt_title: "SRTT (ms)", inflight_title: "bytes in flight",
      live_title: "live:",
    },
    zh: {
      lesson: "课程", language: "语言", speed: "速度", max: "最快",
      play: "播放", pause: "暂停", step: "单步", replay: "重放",
      idle: "空闲", connecting: "正在连接…", loading: "正在运行本课…",
      playing: "播放中", paused: "已暂停", done: "完成", live: "正在实时跟踪",
      following: "正在跟踪", closed: "与 synack view 的连接已断开", error: "出错",
      again: "（重传）", gave_up: "放弃",
      cwnd_title: "拥塞窗口 cwnd（字节）", rtt_title: "平滑往返时间 SRTT（毫秒）",
      inflight_title: "在途字节数", live_title: "实时：",
    },
  };
  const t = (key) => (UI[$("lang").value] || UI.en)[key];

  function applyUI() {
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  }

  function svg(tag, attrs, parent, text) {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    if (parent) parent.appendChild(el);
    return el;
  }

  function flagsLabel(flags) {
    const names = [];
    if (flags.includes("S")) names.push("SYN");
    if (flags.includes("F")) names.push("FIN");
    if (flags.includes("R")) names.push("RST");
    if (flags.includes("P")) names.push("PSH");
    if (flags.includes(".")) names.push("ACK");
    return names.join("+") || flags || "none";
  }

  // ------------------------------------------------------------------ drawing

  function reset() {
    $("drawing").replaceChildren();
    $("lines").replaceChildren();
    $("narration").replaceChildren();
    $("verdict").hidden = true;
    for (const b of document.querySelectorAll(".badge")) b.textContent = "";
    draw = { lastT: null, lastY: TOP, pending: new Map(), series: {}, background: 0, free: {} };
    for (const id of ["plot-cwnd", "plot-rtt", "plot-inflight"]) {
      $(id).replaceChildren();
      $(id).dataset.points = "0";
    }
    pos = 0;
  }

  function showEnds(ends) {
    for (const end of ends) {
      const box = $("end-" + end.id);
      if (!box) continue;
      box.querySelector(".name").textContent = end.label || end.id;
      box.querySelector(".address").textContent = end.address || "";
    }
  }

  // Time runs downwards; a gap grows with the time between events, within bounds,
  // so that a 2 ms handshake and a 60 s backoff both read well.
  function yOf(t) {
    if (draw.lastT === null) {
      draw.lastT = t;
      draw.lastY = TOP + 10;
      timeMark(t);
    } else if (t > draw.lastT + 1e-9) {
      const dt = t - draw.lastT;
      draw.lastY += Math.min(70, Math.max(22, 22 + Math.log10(1 + dt * 1000) * 12));
      draw.lastT = t;
      timeMark(t);
    }
    return draw.lastY;
  }

  function timeMark(t) {
    svg("text", { class: "time", x: 4, y: draw.lastY + 3 }, $("drawing"), t.toFixed(3) + "s");
  }

  function grow(y) {
    const height = Math.max(120, y + 60);
    ladder.setAttribute("height", height);
    const lines = $("lines");
    lines.replaceChildren();
    for (const x of Object.values(X)) {
      svg("line", { class: "endline", x1: x, y1: TOP - 10, x2: x, y2: height - 10 }, lines);
    }
    const scroller = $("ladder-scroll");
    scroller.scrollTop = scroller.scrollHeight;
  }

  function segKey(r) {
    return [r.src, r.dst, r.flags, r.seq, r.ack, r.length, r.tag].join("|");
  }

  function segment(r) {
    if (r.background) {
      draw.background += 1;
      return false;
    }
    const key = segKey(r);
    if (r.event === "sent") {
      plotMetrics(r);
      const y1 = yOf(r.t);
      const x1 = X[r.src];
      const x2 = X[r.dst];
      const label = flagsLabel(r.flags);
      const g = svg("g", { class: "arrow pending", "data-label": label, "data-src": r.src }, $("drawing"));
      if (r.retransmission) g.classList.add("retransmission");
      const line = svg("line", { x1, y1, x2: x1 + (x2 - x1) * 0.25, y2: y1 + 8 }, g);
      const mid = (x1 + x2) / 2;
      svg("text", { class: "label", x: mid, y: y1 - 2, "text-anchor": "middle" }, g,
        label + (r.tag ? " " + r.tag : "") + (r.retransmission ? " " + t("again") : ""));
      const detail = `seq=${r.seq}` + (r.ack === null ? "" : ` ack=${r.ack}`) + ` len=${r.length}`;
      svg("text", { class: "detail", x: mid, y: y1 + 10, "text-anchor": "middle" }, g, detail);
      if (!draw.pending.has(key)) draw.pending.set(key, []);
      draw.pending.get(key).push({ g, line, x1, x2, y1 });
      grow(y1 + 10);
      return true;
    }
    const queue = draw.pending.get(key);
    const arrow = queue && queue.shift();
    if (!arrow) return false;
    arrow.g.classList.remove("pending");
    if (r.event === "delivered") {
      const y2 = Math.max(yOf(r.t), arrow.y1 + 16);
      arrow.line.setAttribute("x2", arrow.x2);
      arrow.line.setAttribute("y2", y2);
      arrow.line.setAttribute("marker-end", "url(#head)");
      grow(y2);
    } else {
      const xm = (arrow.x1 + arrow.x2) / 2;
      const y2 = arrow.y1 + 22;
      arrow.g.classList.add("lost");
      arrow.line.setAttribute("x2", xm);
      arrow.line.setAttribute("y2", y2);
      svg("text", { class: "lost-marker", x: xm, y: y2 + 6, "text-anchor": "middle" }, arrow.g, "✕");
      grow(y2 + 10);
    }
    return true;
  }

  // Text beside an end's line, moved down below the previous one when they would overlap.
  function beside(end, y, cls, text, attrs) {
    const left = end === "client";
    y = Math.max(y, draw.free[end] || 0);
    draw.free[end] = y + 13;
    grow(y);
    return svg("text", {
      class: cls, x: X[end] + (left ? -8 : 8), y, "text-anchor": left ? "end" : "start",
      "data-end": end, ...(attrs || {}),
    }, $("drawing"), text);
  }

  function state(r) {
    const y = yOf(r.t);
    beside(r.end, y + 4, "state", r.state + (r.tag ? " " + r.tag : ""), { "data-state": r.state });
    const badge = document.querySelector(`.badge[data-end="${r.end}"]`);
    if (badge) badge.textContent = r.state;
    grow(y);
    return true;
  }

  function timerRecord(r) {
    const y = yOf(r.t);
    const text = r.gave_up ? `RTO ${r.rto}s: ${t("gave_up")}` : `RTO ${r.rto}s → ${r.next_rto}s`;
    beside(r.end, y + 4, "timer", text);
    grow(y);
    return true;
  }

  function narrate(text, cls) {
    const li = document.createElement("li");
    li.textContent = text;
    if (cls) li.className = cls;
    $("narration").appendChild(li);
    li.scrollIntoView({ block: "nearest" });
  }

  function section(r) {
    const y = yOf(r.t) + 10;
    draw.lastY = y + 16;
    const g = svg("g", { class: "section" }, $("drawing"));
    svg("line", { x1: 0, y1: y, x2: WIDTH, y2: y }, g);
    svg("text", { x: WIDTH / 2, y: y - 4, "text-anchor": "middle" }, g, r.text || r.key);
    narrate(r.text || r.key, "section");
    grow(draw.lastY);
    return true;
  }

  function appArrow(r) {
    const y1 = yOf(r.t);
    const g = svg("g", { class: "arrow app", "data-label": r.label }, $("drawing"));
    if (r.lost) g.classList.add("lost");
    svg("line", { x1: X[r.src], y1, x2: X[r.dst], y2: y1 + 16, "marker-end": "url(#head)" }, g);
    svg("text", { class: "label", x: (X.client + X.server) / 2, y: y1 - 2, "text-anchor": "middle" }, g, r.label);
    grow(y1 + 16);
    return true;
  }

  function call(r) {
    const y = yOf(r.t);
    beside(r.end, y + 4, "call", r.label);
    grow(y);
    return true;
  }

  // One record drawn; true when it showed something (a step of the playback).
  function apply(r) {
    switch (r.kind) {
      case "segment": return segment(r);
      case "state": return state(r);
      case "timer": return timerRecord(r);
      case "note": narrate(r.text || r.key); return true;
      case "bytes": narrate(r.text || r.key); return true;
      case "section": return section(r);
      case "arrow": return appArrow(r);
      case "call": return call(r);
      default: return false;
    }
  }

  // ------------------------------------------------------------------ plots

  const PLOTS = [
    ["plot-cwnd", "cwnd", 1],
    ["plot-rtt", "srtt", 1000],
    ["plot-inflight", "inflight", 1],
  ];

  function plotMetrics(r) {
    const end = r.metrics_end || r.src;
    for (const [id, field, scale] of PLOTS) {
      const v = r[field];
      if (v === null || v === undefined) continue;
      const key = id + "|" + end;
      if (!draw.series[key]) draw.series[key] = { id, end, points: [] };
      draw.series[key].points.push([r.t, v * scale]);
      redrawPlot(id);
    }
  }

  function redrawPlot(id) {
    const chart = $(id);
    const w = Number(chart.getAttribute("width"));
    const h = Number(chart.getAttribute("height"));
    const series = Object.values(draw.series).filter((s) => s.id === id);
    const all = series.flatMap((s) => s.points);
    const t0 = Math.min(...all.map((p) => p[0]));
    const t1 = Math.max(...all.map((p) => p[0]), t0 + 1e-3);
    const vmax = Math.max(...all.map((p) => p[1]), 1);
    const L = 44, R = 8, T = 8, B = 18;
    const px = (t) => L + ((t - t0) / (t1 - t0)) * (w - L - R);
    const py = (v) => h - B - (v / vmax) * (h - T - B);
    chart.replaceChildren();
    svg("line", { class: "axis", x1: L, y1: h - B, x2: w - R, y2: h - B }, chart);
    svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: h - B }, chart);
    svg("text", { x: L - 4, y: T + 8, "text-anchor": "end" }, chart, String(Math.round(vmax)));
    svg("text", { x: L - 4, y: h - B, "text-anchor": "end" }, chart, "0");
    svg("text", { x: w - R, y: h - 4, "text-anchor": "end" }, chart, t1.toFixed(2) + "s");
    for (const s of series) {
      const pts = s.points.map(([t, v]) => `${px(t).toFixed(1)},${py(v).toFixed(1)}`).join(" ");
      svg("polyline", { class: "series", "data-end": s.end, "data-points": s.points.length, points: pts }, chart);
    }
    chart.dataset.points = String(all.length);
  }

  // ------------------------------------------------------------------ playback

  function setStatus(state, text) {
    $("status").dataset.state = state;
    $("status").textContent = text || t(state) || state;
    $("progress").textContent = `${pos}/${records.length}`;
    $("play").textContent = playing ? t("pause") : t("play");
  }

  // Draw records up to and including the next one that shows something.
  function step() {
    while (pos < records.length) {
      const shown = apply(records[pos++]);
      if (shown) return true;
    }
    return false;
  }

  function finished() {
    if (mode === "follow") {
      setStatus(playing ? "live" : "paused");
      return;
    }
    playing = false;
    setStatus("done");
    showVerdict();
  }

  function tick() {
    timer = null;
    if (!playing) return;
    const speed = Number($("speed").value);
    if (speed === 0) {
      while (step());
    } else {
      step();
    }
    if (pos >= records.length) {
      finished();
      return;
    }
    setStatus("playing");
    timer = setTimeout(tick, speed === 0 ? 0 : 700 / speed);
  }

  function play() {
    playing = true;
    if (timer === null) tick();
  }

  function pause() {
    playing = false;
    if (timer !== null) clearTimeout(timer);
    timer = null;
    setStatus("paused");
  }

  function showVerdict() {
    const v = run && run.verdict;
    if (!v) return;
    const box = $("verdict");
    box.hidden = false;
    box.dataset.passed = String(v.passed);
    box.replaceChildren();
    const head = document.createElement("b");
    head.textContent = (v.passed ? "✓ " : "✗ ") + v.text;
    box.appendChild(head);
    const list = document.createElement("ul");
    for (const c of v.checks) {
      const li = document.createElement("li");
      li.textContent = (c.passed ? "✓ " : "✗ ") + c.text;
      list.appendChild(li);
    }
    box.appendChild(list);
  }

  $("play").addEventListener("click", () => (playing ? pause() : play()));
  $("step").addEventListener("click", () => {
    pause();
    if (!step()) finished();
    else setStatus("paused");
  });
  $("replay").addEventListener("click", () => {
    pause();
    reset();
    if (run) showEnds(run.ends);
    play();
  });
  $("lesson").addEventListener("change", () => requestLesson($("lesson").value));
  $("lang").addEventListener("change", () => {
    applyUI();
    if (mode === "lesson") requestLesson($("lesson").value);
  });

  // ------------------------------------------------------------------ the server

  function requestLesson(name) {
    mode = "lesson";
    if (timer !== null) clearTimeout(timer);
    timer = null;
    setStatus("loading");
    const url = new URL(location.href);
    url.searchParams.set("lesson", name);
    history.replaceState(null, "", url);
    socket.send(JSON.stringify({ type: "lesson", name, lang: $("lang").value }));
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}/ws`);
    socket.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      if (msg.type === "hello") hello(msg);
      else if (msg.type === "lesson") lesson(msg);
      else if (msg.type === "records") liveRecords(msg);
      else if (msg.type === "follow") setStatus("live", t("following") + " " + msg.files.join(", "));
      else if (msg.type === "error") setStatus("error", msg.text);
    };
    socket.onclose = () => setStatus("closed");
  }

  function hello(msg) {
    const select = $("lesson");
    select.replaceChildren();
    for (const l of msg.lessons) {
      const opt = document.createElement("option");
      opt.value = l.name;
      opt.textContent = `${l.name}: ${l.title}`;
      select.appendChild(opt);
    }
    $("lang").value = params.get("lang") || msg.lang;
    applyUI();
    const wanted = params.get("lesson") || msg.lesson;
    if (msg.follow.length && !params.get("lesson")) {
      mode = "follow";
      reset();
      if (params.get("speed") === null) $("speed").value = "0";
      $("title").textContent = t("live_title") + " " + msg.follow.join(", ");
      socket.send(JSON.stringify({ type: "follow" }));
      return;
    }
    select.value = wanted || "handshake";
    requestLesson(select.value);
  }

  function lesson(msg) {
    run = msg;
    records = msg.records;
    reset();
    showEnds(msg.ends);
    $("title").textContent = msg.title;
    $("lesson").value = msg.lesson;
    document.documentElement.lang = msg.lang === "zh" ? "zh" : "en";
    if (params.get("autoplay") !== "0") play();
    else {
      playing = false;
      setStatus("paused");
    }
  }

  function liveRecords(msg) {
    showEnds(msg.ends);
    records.push(...msg.records);
    if (playing && timer === null) tick();
    else setStatus(playing ? "live" : "paused");
  }

  reset();
  connect();
})();
