(function () {
  "use strict";
  function quiet(p) { if (p && typeof p.catch === "function") { p.catch(function () {}); } }
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr.caserow")); }
  function activeVideos(row) {
    return Array.prototype.slice.call(row.querySelectorAll(".panel.active video"));
  }
  // the row's playback: every active clip starts together and is pulled back into step with the first one
  function restart(row) {
    activeVideos(row).forEach(function (v) { v.currentTime = 0; quiet(v.play()); });
    row.dataset.paused = "";
  }
  function setVariant(row, index) {
    row.querySelectorAll(".panel").forEach(function (p) {
      var on = p.dataset.variant === String(index);
      p.classList.toggle("active", on);
      var v = p.querySelector("video");
      if (v && !on) { v.pause(); }
    });
    row.querySelectorAll("button.variant").forEach(function (b) {
      b.classList.toggle("on", b.dataset.variant === String(index));
    });
    if (row.dataset.visible === "1") { restart(row); }
  }
  function togglePlay(row) {
    var vids = activeVideos(row);
    var paused = row.dataset.paused === "1";
    vids.forEach(function (v) { if (paused) { quiet(v.play()); } else { v.pause(); } });
    row.dataset.paused = paused ? "" : "1";
  }
  function tick() {
    rows().forEach(function (row) {
      if (row.dataset.visible !== "1" || row.dataset.paused === "1") { return; }
      var vids = activeVideos(row).filter(function (v) { return v.readyState >= 1; });
      if (vids.length < 2) { return; }
      var lead = vids[0];
      vids.slice(1).forEach(function (v) {
        var want = v.duration ? lead.currentTime % v.duration : lead.currentTime;
        if (Math.abs(v.currentTime - want) > 0.12) { v.currentTime = want; }
        if (v.paused && !lead.paused) { quiet(v.play()); }
      });
    });
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
    if (!(t instanceof HTMLElement)) { return; }
    var row = t.closest("tr.caserow");
    if (t.matches("button.variant") && row) { setVariant(row, t.dataset.variant); }
    else if (t.matches("button.restart") && row) { restart(row); }
    else if (t.matches("button.playpause") && row) { togglePlay(row); }
    else if (t.matches("button.sound")) { sound(t); }
  });
  // only rows on screen play (a long grid does not decode every clip at once)
  var seen = function (entries) {
    entries.forEach(function (en) {
      var row = en.target;
      row.dataset.visible = en.isIntersecting ? "1" : "";
      if (en.isIntersecting) { if (row.dataset.paused !== "1") { activeVideos(row).forEach(function (v) { quiet(v.play()); }); } }
      else { row.querySelectorAll("video").forEach(function (v) { v.pause(); }); }
    });
  };
  if ("IntersectionObserver" in window) {
    var io = new IntersectionObserver(seen, { threshold: 0.05 });
    rows().forEach(function (r) { io.observe(r); });
  } else {
    rows().forEach(function (r) { r.dataset.visible = "1"; });
  }
  // when the first clip of a row loops, the others start over with it
  rows().forEach(function (row) {
    var last = 0;
    row.addEventListener("timeupdate", function (e) {
      var lead = activeVideos(row)[0];
      if (e.target !== lead) { return; }
      if (lead.currentTime + 0.05 < last) {
        activeVideos(row).slice(1).forEach(function (v) { v.currentTime = 0; });
      }
      last = lead.currentTime;
    }, true);
  });
  window.setInterval(tick, 500);
}());
