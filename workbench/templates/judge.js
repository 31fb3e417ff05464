/* The report's blind judging panel (workbench/judging/page.py writes #judge-data). Votes follow the schema of
   RUN/judgments.jsonl and stay in localStorage until downloaded; `workbench judgments import` merges them. */
(function () {
  "use strict";
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
  function start() {
  var panel = document.getElementById("judge-panel"), node = document.getElementById("judge-data");
  if (!panel || !node) { return; }
  var D;
  try { D = JSON.parse(node.textContent); } catch (e) { return; }
  panel.hidden = false;
  var media = {};
  try { media = JSON.parse((document.getElementById("clip-media") || {}).textContent || "{}"); } catch (e) { media = {}; }
  function src(path) {
    if (media[path]) { return media[path]; }
    var el = document.querySelector('[data-clip="' + (window.CSS && CSS.escape ? CSS.escape(path) : path) + '"]');
    var s = el ? el.getAttribute("src") || "" : "";
    return s.indexOf("data:") === 0 ? s : path;
  }
  var KEY = "wb-judge:" + D.run;
  var state;
  try { state = JSON.parse(localStorage.getItem(KEY) || "null"); } catch (e) { state = null; }
  state = state || { rater: "", votes: [] };
  function save() { try { localStorage.setItem(KEY, JSON.stringify(state)); } catch (e) {} }
  var $ = function (id) { return document.getElementById(id); };
  var rater = $("judge-rater"), crit = $("judge-criterion"), kSel = $("judge-k"), reveal = $("judge-reveal");
  var board = $("judge-board"), status = $("judge-status");
  D.criteria.forEach(function (c) { var o = document.createElement("option"); o.value = c[0]; o.textContent = c[1]; crit.appendChild(o); });
  rater.value = state.rater || "";
  rater.addEventListener("change", function () { state.rater = rater.value.trim(); save(); });
  var current = null, revealed = false, ranking = null;

  function hex() {
    var a = new Uint8Array(16);
    (window.crypto || {}).getRandomValues ? crypto.getRandomValues(a) : a.forEach(function (_, i) { a[i] = Math.random() * 256; });
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function shuffle(a) { for (var i = a.length - 1; i > 0; i--) { var j = Math.floor(Math.random() * (i + 1)); var t = a[i]; a[i] = a[j]; a[j] = t; } return a; }
  function counts() {
    var row = {}, shown = {}, place = {};
    state.votes.forEach(function (v) {
      if (v.criterion !== crit.value) { return; }
      var k = v.case + "|" + v.seed + "|" + (v.output || 0);
      row[k] = (row[k] || 0) + 1;
      v.clips.forEach(function (c, i) { shown[c] = (shown[c] || 0) + 1; place[c + "@" + i] = (place[c + "@" + i] || 0) + 1; });
    });
    return { row: row, shown: shown, place: place };
  }
  function pick() {
    var C = counts(), best = null, bestN = Infinity;
    shuffle(D.rows.slice()).forEach(function (r) {
      var n = r.n + (C.row[r.c + "|" + r.s + "|" + r.o] || 0);
      if (n < bestN) { bestN = n; best = r; }
    });
    if (!best) { return null; }
    var k = Math.min(+kSel.value, best.x.length);
    var clips = shuffle(best.x.slice()).sort(function (a, b) { return (C.shown[a[0]] || 0) - (C.shown[b[0]] || 0); }).slice(0, k);
    var bestOrder = null, bestCost = Infinity;
    for (var t = 0; t < 24; t++) {  // random orders: keep the one that puts each clip where it was shown least
      var o = shuffle(clips.slice()), cost = 0;
      o.forEach(function (c, i) { cost += C.place[c[0] + "@" + i] || 0; });
      if (cost < bestCost) { bestCost = cost; bestOrder = o; }
    }
    return { row: best, clips: bestOrder };
  }
  function mine() { return state.votes.length; }
  function say(text) {
    status.textContent = (text ? text + " · " : "") + mine() + " vote" + (mine() === 1 ? "" : "s") + " kept in this browser";
    $("judge-download").textContent = "download votes (" + mine() + ")";
  }
  function vids() { return Array.prototype.slice.call(board.querySelectorAll("video")); }
  function playPause() {
    var vs = vids(); if (!vs.length) { return; }
    if (vs.some(function (v) { return !v.paused; })) { vs.forEach(function (v) { v.pause(); }); return; }
    var t0 = vs[0].currentTime;
    vs[0].muted = false;  // the case's sound, from the first clip (autoplay starts muted)
    vs.forEach(function (v) { try { v.currentTime = t0; } catch (e) {} var p = v.play(); if (p && p.catch) { p.catch(function () {}); } });
  }
  function draw() {
    board.innerHTML = "";
    if (!current) { board.textContent = "nothing to judge: no case has clips from two models"; return; }
    var row = document.createElement("div"); row.className = "judge-row";
    current.clips.forEach(function (c, i) {
      var cell = document.createElement("div"); cell.className = "judge-cell";
      var b = document.createElement("button"); b.type = "button"; b.className = "judge-pick";
      b.textContent = (i + 1) + (revealed ? "  " + c[2] : "");
      b.onclick = function () { vote("best", [i]); };
      cell.appendChild(b);
      var v = document.createElement("video");
      v.src = src(c[1]); v.loop = true; v.muted = true; v.autoplay = true; v.playsInline = true; v.preload = "auto";
      v.setAttribute("data-judge", c[0]);
      cell.appendChild(v);
      row.appendChild(cell);
    });
    board.appendChild(row);
    var bar = document.createElement("div"); bar.className = "judge-bar";
    [["tie (t)", function () { vote("tie", []); }], ["all bad (x)", function () { vote("all_bad", []); }],
     ["rank (r)", function () { ranking = []; say("rank: the clips best first"); }], ["play (space)", playPause]].forEach(function (p) {
      var b = document.createElement("button"); b.type = "button"; b.textContent = p[0]; b.onclick = p[1]; bar.appendChild(b);
    });
    var note = document.createElement("input"); note.id = "judge-note"; note.placeholder = "note (optional, n)"; note.size = 30;
    bar.appendChild(note);
    board.appendChild(bar);
    var vs = vids();
    if (vs.length > 1) {
      vs[0].addEventListener("timeupdate", function () {
        vs.slice(1).forEach(function (v) { if (!v.paused && v.duration && Math.abs(v.currentTime - vs[0].currentTime) > 0.12 && vs[0].currentTime < v.duration) { v.currentTime = vs[0].currentTime; } });
      });
    }
  }
  function next() {
    revealed = false; ranking = null;
    var p = pick();
    current = p ? { row: p.row, clips: p.clips.map(function (c) { return [c[0], c[1], c[2] || ""]; }) } : null;
    draw(); say("");
    panel.focus();
  }
  function vote(choice, positions) {
    if (!current || revealed) { return; }
    var who = rater.value.trim();
    if (!who) { say("type your name in 'rater' first"); rater.focus(); return; }
    state.rater = who;
    var note = $("judge-note");
    state.votes.push({ vote_id: hex(), rater: who, time: new Date().toISOString().replace(/\.\d+Z$/, "Z"), run: D.run,
                       case: current.row.c, seed: current.row.s, output: current.row.o,
                       clips: current.clips.map(function (c) { return c[0]; }), models: null, choice: choice,
                       positions: positions, criterion: crit.value, note: note ? note.value : "", source: "report" });
    save();
    if (reveal.checked) {
      var names = {};
      D.rows.forEach(function (r) { r.x.forEach(function (x) { names[x[0]] = x[2] || ""; }); });
      current.clips.forEach(function (c) { c[2] = names[c[0]] || "?"; });
      revealed = true; draw(); say("saved · Enter for the next");
    } else { next(); say("saved"); }
  }
  panel.addEventListener("keydown", function (e) {
    if (e.target && (e.target.tagName === "INPUT" || e.target.tagName === "SELECT")) {
      if (e.key === "Escape") { panel.focus(); }
      return;
    }
    if (!current) { return; }
    var k = current.clips.length, used = true;
    if (revealed && (e.key === "Enter" || e.key === "ArrowRight")) { next(); }
    else if (/^[1-4]$/.test(e.key) && +e.key <= k) {
      var p = +e.key - 1;
      if (ranking !== null) {
        if (ranking.indexOf(p) < 0) { ranking.push(p); }
        if (ranking.length === k - 1) { for (var i = 0; i < k; i++) { if (ranking.indexOf(i) < 0) { ranking.push(i); } } }
        say("rank: " + ranking.map(function (x) { return x + 1; }).join(" > "));
        if (ranking.length === k) { var r = ranking.slice(); ranking = null; vote("rank", r); }
      } else { vote("best", [p]); }
    }
    else if (e.key === "t") { vote("tie", []); }
    else if (e.key === "x") { vote("all_bad", []); }
    else if (e.key === "r") { ranking = []; say("rank: the clips best first"); }
    else if (e.key === " ") { playPause(); }
    else if (e.key === "n") { var n = $("judge-note"); if (n) { n.focus(); } }
    else { used = false; }
    if (used) { e.preventDefault(); }
  });
  $("judge-start").onclick = next;
  crit.onchange = kSel.onchange = function () { if (current) { next(); } };
  $("judge-download").onclick = function () {
    var text = state.votes.map(function (v) { return JSON.stringify(v); }).join("\n") + (state.votes.length ? "\n" : "");
    var a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" }));
    a.download = "judgments-" + D.run + "-" + (rater.value.trim() || "rater").replace(/[^\w.-]+/g, "_") + ".jsonl";
    document.body.appendChild(a); a.click(); a.remove();
  };
  $("judge-clear").onclick = function () {
    if (!state.votes.length || confirm("Forget the " + state.votes.length + " votes kept in this browser? Download them first.")) {
      state.votes = []; save(); say("cleared");
    }
  };
  say("");
  }
})();
