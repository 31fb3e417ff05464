(function () {
  "use strict";
  // Row playback. Each case row plays its active clips (one per model, the chosen seed) in step: the
  // row's lead is its longest clip, every other clip shows the lead's time modulo its own duration
  // (a shorter clip loops inside the lead's loop; all start over when the lead does). Once per
  // animation frame a follower's drift from that target is corrected: small drift by nudging its
  // playbackRate (no visible jump), large drift (a loop, a stall, a seed switch) by one seek.
  var NUDGE_S = 0.004;   // drift below this: play at rate 1
  var SEEK_S = 0.25;     // drift above this: seek instead of nudging
  var GAIN = 4.0;        // rate correction per second of drift (drift halves in ~0.17 s)
  var MAX_NUDGE = 0.35;  // playbackRate stays within 1 +- this

  function quiet(p) { if (p && typeof p.catch === "function") { p.catch(function () {}); } }
  function list(x) { return Array.prototype.slice.call(x); }
  function rows() { return list(document.querySelectorAll("tr.caserow")); }
  function activeVideos(row) { return list(row.querySelectorAll(".panel.active video")); }
  function known(v) { return v.readyState >= 1 && isFinite(v.duration) && v.duration > 0; }
  function setRate(v, r) { if (Math.abs(v.playbackRate - r) > 0.005) { v.playbackRate = r; } }

  // scripts run: the row controls take over from the per-clip controls and autoplay that serve the
  // page without scripts (see the <noscript> note)
  function takeOver(root) {
    list(root.querySelectorAll("video")).forEach(function (v) {
      v.removeAttribute("controls");
      v.controls = false;
      var on = v.closest(".panel.active") !== null;
      if (!on) { v.removeAttribute("autoplay"); v.autoplay = false; v.pause(); }
    });
  }

  // linked clips inside Jupyter's HTML viewer: the page comes from a blob: URL with <base href=
  // .../files/RUN/report.html?_xsrf=...>; a relative clip URL loses that _xsrf and a blob: page sends no
  // Referer, so jupyter_server refuses it. Put the _xsrf back (only possible when scripts run: trusted).
  var XSRF_BASE = null;
  (function () {
    var base;
    try { base = new URL(document.baseURI); } catch (e) { return; }
    if (base.searchParams.get("_xsrf") && /^https?:$/.test(base.protocol)) { XSRF_BASE = base; }
  }());
  function relink(root) {
    if (!XSRF_BASE) { return; }
    var xsrf = XSRF_BASE.searchParams.get("_xsrf");
    list(root.querySelectorAll("video[data-embedded='0'], .media.linked img")).forEach(function (el) {
      var rel = el.getAttribute("src");
      if (!rel || /^(data|blob|https?):/.test(rel) || el.dataset.relinked) { return; }
      var u = new URL(rel, XSRF_BASE);
      u.searchParams.set("_xsrf", xsrf);
      el.setAttribute("src", u.pathname + u.search);
      el.dataset.relinked = "1";
    });
  }

  function lead(vids) {
    var best = null;
    vids.forEach(function (v) { if (known(v) && (best === null || v.duration > best.duration + 1e-3)) { best = v; } });
    return best;
  }
  // signed drift of v from where the row wants it, the shorter way round its own loop (so a clip that
  // has just looped and one about to loop are a frame apart, not a whole clip)
  function drift(v, leader) {
    var d = v.duration;
    var want = leader.currentTime % d;
    var x = v.currentTime - want;
    return { x: ((x + d / 2) % d + d) % d - d / 2, want: want };
  }

  function syncRow(row) {
    if (row.dataset.visible !== "1" || row.dataset.paused === "1" || row.dataset.seeking === "1") { return; }
    var vids = activeVideos(row);
    var leader = lead(vids);
    if (!leader) { return; }
    setRate(leader, 1);
    if (leader.paused) { quiet(leader.play()); }
    vids.forEach(function (v) {
      if (v === leader || !known(v)) { return; }
      if (v.paused && !leader.paused) { quiet(v.play()); }
      if (v.seeking || leader.seeking) { return; }
      var d = drift(v, leader);
      if (Math.abs(d.x) > SEEK_S) {
        setRate(v, 1);
        v.currentTime = d.want;
      } else if (Math.abs(d.x) < NUDGE_S) {
        setRate(v, 1);
      } else {
        setRate(v, 1 - Math.max(-MAX_NUDGE, Math.min(MAX_NUDGE, GAIN * d.x)));
      }
    });
  }
  function frame() {
    rows().forEach(syncRow);
    window.requestAnimationFrame(frame);
  }

  // the whole row: pause every clip, seek all to the start, play them together once every seek is done
  function restart(row) {
    var vids = activeVideos(row);
    row.dataset.paused = "";
    row.dataset.seeking = "1";
    var pending = vids.length;
    var done = false;
    function go() {
      if (done) { return; }
      done = true;
      row.dataset.seeking = "";
      if (row.dataset.visible === "1") { vids.forEach(function (v) { quiet(v.play()); }); }
    }
    vids.forEach(function (v) {
      v.pause();
      setRate(v, 1);
      var once = function () { v.removeEventListener("seeked", once); pending -= 1; if (pending <= 0) { go(); } };
      v.addEventListener("seeked", once);
      try { v.currentTime = 0; } catch (e) { once(); }
    });
    if (!vids.length) { go(); }
    window.setTimeout(go, 1500);  // a clip that never reports its seek does not hold the row
  }
  function setVariant(row, index) {
    row.querySelectorAll(".panel").forEach(function (p) {
      var on = p.dataset.variant === String(index);
      p.classList.toggle("active", on);
      var v = p.querySelector("video");
      if (v && !on) { v.pause(); }
      if (v && on && v.preload !== "auto") { v.preload = "auto"; }
    });
    row.querySelectorAll("button.variant").forEach(function (b) {
      b.classList.toggle("on", b.dataset.variant === String(index));
    });
    restart(row);
  }
  function togglePlay(row) {
    var paused = row.dataset.paused === "1";
    if (paused) {
      row.dataset.paused = "";
      var leader = lead(activeVideos(row));
      activeVideos(row).forEach(function (v) {
        if (leader && v !== leader && known(v)) { v.currentTime = drift(v, leader).want; }
        quiet(v.play());
      });
    } else {
      row.dataset.paused = "1";
      activeVideos(row).forEach(function (v) { v.pause(); setRate(v, 1); });
    }
  }
  function sound(button) {
    var v = button.parentNode.querySelector("video");
    if (!v) { return; }
    var unmute = v.muted;
    document.querySelectorAll("video").forEach(function (o) { o.muted = true; });
    document.querySelectorAll("button.sound").forEach(function (b) { b.textContent = "\u266A unmute"; });
    v.muted = !unmute;
    if (unmute) { button.textContent = "\u266A mute"; quiet(v.play()); }
  }
  document.addEventListener("click", function (e) {
    var t = e.target;
    if (!(t instanceof Element)) { return; }
    var row = t.closest("tr.caserow");
    if (t.matches("button.variant") && row) { setVariant(row, t.dataset.variant); }
    else if (t.matches("button.restart") && row) { restart(row); }
    else if (t.matches("button.playpause") && row) { togglePlay(row); }
    else if (t.matches("button.sound")) { sound(t); }
  });
  // only rows on screen play (a long grid does not decode every clip at once)
  function seen(entries) {
    entries.forEach(function (en) {
      var row = en.target;
      row.dataset.visible = en.isIntersecting ? "1" : "";
      if (en.isIntersecting) {
        if (row.dataset.paused !== "1") { activeVideos(row).forEach(function (v) { quiet(v.play()); }); }
      } else {
        row.querySelectorAll("video").forEach(function (v) { v.pause(); });
      }
    });
  }
  var io = ("IntersectionObserver" in window) ? new IntersectionObserver(seen, { threshold: 0.05 }) : null;
  function watch(root) {
    list(root.querySelectorAll("tr.caserow")).concat(root.matches && root.matches("tr.caserow") ? [root] : [])
      .forEach(function (r) { if (io) { io.observe(r); } else { r.dataset.visible = "1"; } });
  }
  function prepare(root) { takeOver(root); relink(root); watch(root); }

  // the clip table pages, filters and sorts itself (report_table.js) and prepares each page it draws
  if (typeof window.ClipTable === "function") { window.ClipTable(prepare); }
  prepare(document);
  window.requestAnimationFrame(frame);
}());
